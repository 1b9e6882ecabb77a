"""OAuth2 app routes: create, read, partial update, freeze while in use, delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.config import Config
from service.core import Core
from tests.conftest import make_token

Client = TestClient[web.Request, web.Application]
GOOGLE = {"id": "gmail", "provider": "gmail", "clientId": "cid", "clientSecret": "s3cret-value"}


async def test_create_and_read_google_app(client: Client, admin: dict[str, str]) -> None:
    """A gmail app gets built-in endpoints and the IMAP preset; the secret is never returned."""
    body = {**GOOGLE, "additionalScopes": "https://www.googleapis.com/auth/postmaster.readonly"}
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 200 and await resp.json() == {"id": "gmail", "created": True}
    created = await (await client.get("/v1/oauth2/gmail", headers=admin)).json()
    assert created["clientSecret"] == "******"
    assert created["tokenUrl"] == "https://oauth2.googleapis.com/token"
    assert created["scopes"][:2] == [
        "https://www.googleapis.com/auth/postmaster.readonly",
        "https://mail.google.com/",
    ]
    assert created["clientSecretSet"] is True
    assert created["redirectUrl"] == "http://127.0.0.1:8080/oauth/callback"
    text = await (await client.get("/v1/oauth2/gmail", headers=admin)).text()
    listing = await (await client.get("/v1/oauth2", headers=admin)).text()
    assert "s3cret-value" not in text + listing + str(created)
    resp = await client.post("/v1/oauth2", json=GOOGLE, headers=admin)
    assert resp.status == 409
    assert (await resp.json())["code"] == "AppExists"


async def test_microsoft_tenant_and_cloud(client: Client, admin: dict[str, str]) -> None:
    """Outlook apps build endpoints from authority and cloud; unknown clouds are refused."""
    body = {
        "id": "ms",
        "provider": "outlook",
        "clientId": "c",
        "clientSecret": "s",
        "authority": "organizations",
        "cloud": "gcc-high",
    }
    await client.post("/v1/oauth2", json=body, headers=admin)
    created = await (await client.get("/v1/oauth2/ms", headers=admin)).json()
    assert created["authority"] == "organizations" and created["cloud"] == "gcc-high"
    assert created["tokenUrl"] == "https://login.microsoftonline.us/organizations/oauth2/v2.0/token"
    assert "offline_access" in created["scopes"]
    assert created["revocationUrl"] is None
    resp = await client.post(
        "/v1/oauth2", json={**body, "id": "ms2", "cloud": "mars"}, headers=admin
    )
    assert (await resp.json())["code"] == "InvalidInput"


async def test_endpoint_overrides_need_flag(
    make_client: Callable[..., Awaitable[Client]], config: Config, admin: dict[str, str]
) -> None:
    """Overriding google endpoints is refused unless TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES."""
    strict = await make_client(
        replace(config, allow_endpoint_overrides=False, allow_private_urls=False)
    )
    body = {**GOOGLE, "tokenUrl": "https://evil.example/token"}
    resp = await strict.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 400
    oidc = {
        "id": "o",
        "provider": "oidc",
        "clientId": "c",
        "clientSecret": "s",
        "issuer": "http://127.0.0.1:9/",
    }
    resp = await strict.post("/v1/oauth2", json=oidc, headers=admin)
    assert resp.status == 400
    assert "PRIVATE_URLS" in (await resp.json())["message"]


async def test_partial_update_keeps_secret(client: Client, admin: dict[str, str]) -> None:
    """PUT changes only the given fields; an omitted secret is kept."""
    await client.post("/v1/oauth2", json=GOOGLE, headers=admin)
    resp = await client.put(
        "/v1/oauth2/gmail", json={"name": "Mail", "additionalScopes": []}, headers=admin
    )
    assert resp.status == 200 and await resp.json() == {"id": "gmail", "updated": True}
    body = await (await client.get("/v1/oauth2/gmail", headers=admin)).json()
    assert body["name"] == "Mail" and body["clientSecretSet"] is True
    assert body["clientId"] == "cid"


async def test_frozen_while_in_use_and_delete(
    client: Client,
    admin: dict[str, str],
    import_account: Callable[..., Awaitable[Any]],
) -> None:
    """Endpoints cannot change while accounts use the app; deleting it deletes them."""
    await import_account()
    resp = await client.put(
        "/v1/oauth2/idp", json={"tokenUrl": "http://127.0.0.1:1/t"}, headers=admin
    )
    assert resp.status == 409
    assert (await resp.json())["code"] == "AppInUse"
    resp = await client.put("/v1/oauth2/idp", json={"name": "renamed"}, headers=admin)
    assert resp.status == 200
    await import_account("second")
    resp = await client.delete("/v1/oauth2/idp", headers=admin)
    assert resp.status == 200
    assert await resp.json() == {"id": "idp", "deleted": True, "accounts": 2}
    assert (await client.get("/v1/oauth2/idp", headers=admin)).status == 404
    for account in ("example", "second"):
        gone = await client.get(f"/v1/account/{account}", headers=admin)
        assert gone.status == 404, account
    listed = await client.get("/v1/accounts", headers=admin)
    assert (await listed.json())["total"] == 0


OIDC = {"id": "corp", "provider": "oidc", "clientId": "c", "clientSecret": "s"}


async def test_api_token_cannot_set_endpoint_urls(client: Client, core: Core) -> None:
    """An `api` token creating an app with endpoint URLs gets 403 and nothing is stored."""
    api = {"Authorization": f"Bearer {await make_token(core, 'api')}"}
    for field in ("tokenUrl", "issuer", "authorizationUrl", "userinfoUrl", "jwksUrl"):
        body = {**OIDC, field: "http://127.0.0.1:9/caller-controlled"}
        resp = await client.post("/v1/oauth2", json=body, headers=api)
        answer = await resp.json()
        assert resp.status == 403 and answer["code"] == "OperatorAuthorityRequired", answer
        assert answer["details"] == {"fields": [field]}
        assert await core.apps.get("corp") is None, "nothing stored"
    resp = await client.post("/v1/oauth2", json=GOOGLE, headers=api)
    assert resp.status == 200, "apps without endpoint URLs stay open to `api` tokens"


async def test_api_token_cannot_change_endpoint_urls(
    client: Client, core: Core, admin: dict[str, str]
) -> None:
    """An `api` token may rename an app but not change or remove its URLs; `*` may."""
    api = {"Authorization": f"Bearer {await make_token(core, 'api')}"}
    body = {**OIDC, "tokenUrl": "http://127.0.0.1:9/token", "revocationUrl": "http://127.0.0.1:9/r"}
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    for change in (
        {"tokenUrl": "http://127.0.0.1:10/caller"},
        {"revocationUrl": None},
        {"name": "x", "issuer": "http://127.0.0.1:10/"},
    ):
        resp = await client.put("/v1/oauth2/corp", json=change, headers=api)
        assert resp.status == 403, change
        assert (await resp.json())["code"] == "OperatorAuthorityRequired"
    app = await core.apps.require("corp")
    assert app.fields["tokenUrl"] == "http://127.0.0.1:9/token" and "name" not in app.fields
    assert app.fields["revocationUrl"] == "http://127.0.0.1:9/r" and "issuer" not in app.fields
    same = {"name": "Corp", "tokenUrl": "http://127.0.0.1:9/token"}
    resp = await client.put("/v1/oauth2/corp", json=same, headers=api)
    assert resp.status == 200, "an unchanged URL is no change"
    moved = {"tokenUrl": "http://127.0.0.1:11/token"}
    resp = await client.put("/v1/oauth2/corp", json=moved, headers=admin)
    assert resp.status == 200
    shown = await (await client.get("/v1/oauth2/corp", headers=admin)).json()
    assert shown["tokenUrl"] == moved["tokenUrl"]


async def test_declared_grant_lifetimes(client: Client, admin: dict[str, str]) -> None:
    """PublishingStatus (gmail, oidc) and platform (outlook) are kept, shown and checked."""
    resp = await client.post(
        "/v1/oauth2", json={**GOOGLE, "publishingStatus": "testing"}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    created = await (await client.get("/v1/oauth2/gmail", headers=admin)).json()
    assert created["publishingStatus"] == "testing" and "platform" not in created
    outlook = {
        "id": "ms",
        "provider": "outlook",
        "clientId": "c",
        "clientSecret": "s",
        "authority": "organizations",
    }
    for wrong, field in (
        ({"publishingStatus": "testing"}, "publishingStatus"),
        ({"platform": "mobile"}, "platform"),
    ):
        resp = await client.post("/v1/oauth2", json={**outlook, **wrong}, headers=admin)
        body = await resp.json()
        assert resp.status == 400 and body["code"] == "InvalidInput", body
        assert field in orjson.dumps(body).decode()
    resp = await client.post("/v1/oauth2", json={**outlook, "platform": "spa"}, headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await (await client.get("/v1/oauth2/ms", headers=admin)).json())["platform"] == "spa"
