"""Provider types end to end: outlook refreshes, records of earlier versions, service apps."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.ee_transcript import entry, same_shape
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
pytestmark = pytest.mark.usefixtures("enabled")


def outlook_at_idp(idp: Idp, app_id: str = "ms") -> dict[str, Any]:
    """An outlook app (IMAP preset, one extra scope) whose endpoints are the test provider's."""
    return {
        "id": app_id,
        "provider": "outlook",
        "authority": "organizations",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "extraScopes": ["mail.read"],
    }


async def import_grant(client: Client, admin: dict[str, str], app: str, refresh: str) -> None:
    """Import account 'm' on `app` holding `refresh` and no access token."""
    oauth2 = {"provider": app, "auth": {"user": "m@example.test"}, "refreshToken": refresh}
    resp = await client.post("/v1/account", json={"account": "m", "oauth2": oauth2}, headers=admin)
    assert resp.status == 200, await resp.text()


async def test_outlook_refresh_sends_no_scope(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A grant holding fewer scopes than the app's preset still refreshes (no `scope` sent)."""
    await core.apps.create(outlook_at_idp(idp), iso(SystemClock().now_ms()))
    minted = idp.mint("m-user", "openid email offline_access")  # a migrated, narrower grant
    await import_grant(client, admin, "ms", str(minted["refresh_token"]))
    resp = await client.get("/v1/account/m/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["provider"] == "outlook" and body["app"] == "ms" and body["accessToken"]


async def test_records_of_earlier_versions_read_as_today(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """An app stored as microsoft (v1, cloud usgov) and its account serve as outlook ones."""
    old = {**outlook_at_idp(idp, "old"), "provider": "microsoft", "v": "1", "cloud": "usgov"}
    old["tenant"] = old.pop("authority")
    old["additionalScopes"] = '["mail.read"]'
    del old["extraScopes"]
    old["clientSecret"] = core.cipher.encrypt(idp.client_secret, "app:old:clientSecret")
    await core.redis.hset(core.keys.app("old"), mapping={k: str(v) for k, v in old.items()})
    await core.redis.sadd(core.keys.apps, "old")
    shown = await (await client.get("/v1/oauth2/old", headers=admin)).json()
    assert shown["provider"] == "outlook" and shown["cloud"] == "gcc-high"
    assert shown["baseScopes"] == "none", "it keeps asking for what it asked for then"
    assert shown["scopes"] == ["mail.read", "openid", "email", "profile", "offline_access"]
    minted = idp.mint("m-user", "openid email offline_access mail.read")
    await import_grant(client, admin, "old", str(minted["refresh_token"]))
    await core.redis.hset(core.keys.account("m"), "provider", "microsoft")  # as stored then
    account = await core.accounts.require("m")
    assert account.provider == "outlook"
    resp = await client.put("/v1/oauth2/old", json={"title": "Old"}, headers=admin)
    assert resp.status == 200
    again = await (await client.get("/v1/oauth2/old", headers=admin)).json()
    assert again["baseScopes"] == "none" and again["title"] == "Old"
    assert await core.redis.hget(core.keys.app("old"), "v") == "2"


async def test_gmail_service_app_stored_and_shown(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A gmailService app keeps its EmailEngine fields; the PEM key is encrypted, never shown."""
    pem = str(idp.service_account()["private_key"])
    body = {
        "name": "SA",
        "provider": "gmailService",
        "serviceClient": "100000000000000000001",
        "serviceClientEmail": "sa@project.iam.gserviceaccount.com",
        "serviceKey": pem,
        "baseScopes": "api",
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    created = await resp.json()
    assert resp.status == 200 and created["created"] is True
    shown = await (await client.get(f"/v1/oauth2/{created['id']}", headers=admin)).json()
    assert shown["serviceKey"] == "******" and shown["authMethod"] == "serviceKey"
    assert shown["enabled"] is True and shown["includeInListing"] is False
    assert shown["serviceClientEmail"] == body["serviceClientEmail"]
    stored = str(await core.redis.hget(core.keys.app(created["id"]), "serviceKey"))
    assert "PRIVATE KEY" not in stored
    app = await core.apps.require(created["id"])
    assert core.cipher.decrypt(stored, f"app:{app.id}:serviceKey") == pem.strip()


@pytest.mark.parametrize("name", ["oauth-token.cached.gmail", "oauth-token.cached.outlook-gcc"])
async def test_token_endpoint_names_type_and_app(
    client: Client, admin: dict[str, str], core: Core, name: str
) -> None:
    """The token endpoint answers EmailEngine's keys; `provider` is the type, `app` the app id."""
    recorded = entry(name)["responseBody"]
    kind, app = recorded["provider"], recorded["app"]
    body: dict[str, Any] = {"id": app, "provider": kind, "clientId": "c", "clientSecret": "s"}
    if kind == "outlook":
        body.update(authority="3f2504e0-4f89-41d3-9a0c-0305e82c3301", cloud="gcc-high")
    await core.apps.create(body, iso(SystemClock().now_ms()))
    oauth2 = {
        "provider": app,
        "auth": {"user": recorded["user"]},
        "refreshToken": "RT",
        "accessToken": recorded["accessToken"],
        "expires": recorded["expires"],
    }
    account = {"account": recorded["account"], "oauth2": oauth2}
    assert (await client.post("/v1/account", json=account, headers=admin)).status == 200
    resp = await client.get(f"/v1/account/{recorded['account']}/oauth-token", headers=admin)
    answer = await resp.json()
    assert resp.status == 200 and same_shape(answer, recorded) == []
    assert {k: answer[k] for k in ("provider", "app", "cached", "accessToken")} == {
        k: recorded[k] for k in ("provider", "app", "cached", "accessToken")
    }


async def test_service_app_takes_no_refresh_token_or_consent(
    client: Client, admin: dict[str, str], core: Core
) -> None:
    """outlookService: a refresh token is refused (400), a consent is 501."""
    body = {
        "id": "osvc",
        "provider": "outlookService",
        "clientId": "c",
        "clientSecret": "s",
        "authority": "6ba7b810-9dad-11d1-80b4-00c04fd430c8",
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    oauth2 = {
        "provider": "osvc",
        "auth": {"user": "app@example.test"},
        "refreshToken": "unused",
    }
    account = {"account": "svc", "oauth2": oauth2}
    resp = await client.post("/v1/account", json=account, headers=admin)
    assert resp.status == 400 and (await resp.json())["details"] == {"field": "refreshToken"}
    consent = {"account": "svc2", "oauth2": {"provider": "osvc", "authorize": True}}
    resp = await client.post("/v1/account", json=consent, headers=admin)
    assert resp.status == 501 and (await resp.json())["code"] == "ProviderTypeUnsupported"
