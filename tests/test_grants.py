"""Application grants at the test provider: JWT bearer (gmailService) and client credentials."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service import errors
from service.account_record import Status
from service.clock import SystemClock, iso
from service.core import Core
from service.grants import grant_type, jwt_failure
from service.oauth.client import Failure, Granted
from service.service_key import JWT_BEARER, assertion, parse_service_key
from tests.support.certs import auth_attempts, expire_credential, register_secret
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
pytestmark = pytest.mark.usefixtures("enabled")
TENANT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
NEXT_SECRET = "tokenbroker-test-next-secret"


async def gmail_service_app(core: Core, idp: Idp, app_id: str = "gsvc") -> dict[str, Any]:
    """A gmailService app made from a JSON key file of the test provider; returns the file."""
    key_file = idp.service_account()
    body = {
        "id": app_id,
        "provider": "gmailService",
        "serviceKey": orjson.dumps(key_file).decode(),
        "tokenUrl": idp.token_url,
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    return key_file


async def outlook_service_app(core: Core, idp: Idp, app_id: str = "osvc") -> None:
    """An outlookService app whose token endpoint is the test provider's."""
    body = {
        "id": app_id,
        "provider": "outlookService",
        "authority": TENANT,
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "tokenUrl": idp.token_url,
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))


async def add(client: Client, admin: dict[str, str], account: str, app: str, user: str) -> None:
    """Import an account of a service app: a mailbox, no tokens."""
    oauth2 = {"provider": app, "auth": {"user": user}}
    resp = await client.post(
        "/v1/account", json={"account": account, "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()


def test_grant_type_per_provider() -> None:
    """GmailService mints with JWT bearer, outlookService with client credentials."""
    assert grant_type("gmailService") == "jwt_bearer"
    assert grant_type("outlookService") == "client_credentials"
    assert grant_type("gmail") == grant_type("oidc") == "refresh_token"


def test_service_key_from_pem_or_json(idp: Idp) -> None:
    """Both forms parse; the JSON key file also gives the key id, email and client id."""
    key_file = idp.service_account()
    from_json = parse_service_key(orjson.dumps(key_file).decode())
    from_pem = parse_service_key(str(key_file["private_key"]))
    assert from_json.signer.to_dict() == from_pem.signer.to_dict()
    assert from_json.key_id == key_file["private_key_id"]
    assert from_json.client_email == key_file["client_email"]
    assert "PRIVATE" not in repr(from_json)


@pytest.mark.parametrize("text", ["not a key", '{"private_key": 1}', "{", "-----BEGIN X-----"])
def test_bad_service_key_refused_without_echo(text: str) -> None:
    """Anything but a private key is InvalidInput naming the field, never repeating the text."""
    with pytest.raises(errors.InvalidInput) as raised:
        parse_service_key(text)
    assert raised.value.details == {"field": "serviceKey"} and text not in str(raised.value)


def test_jwt_failures_classified() -> None:
    """A refused assertion or scope is the app's; a refused subject is the account's."""
    bad_sig = Failure("permanent", "invalid_grant", "Invalid JWT Signature.", 400)
    assert jwt_failure(bad_sig).kind == "app"
    no_user = Failure("permanent", "invalid_grant", "Invalid email or User ID", 400)
    assert jwt_failure(no_user).kind == "permanent"
    assert jwt_failure(no_user).reason == "delegationRefused"
    scopes = Failure("app", "unauthorized_client", "not authorized for the scopes", 401)
    assert jwt_failure(scopes).kind == "app"


async def test_gmail_service_token_minted_without_refresh_token(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """The token endpoint mints a delegated token on demand; no refresh token is stored."""
    key_file = await gmail_service_app(core, idp)
    app = await core.apps.require("gsvc")
    assert app.fields["serviceClientEmail"] == key_file["client_email"]
    await add(client, admin, "box1", "gsvc", "alice@example.test")
    resp = await client.get("/v1/account/box1/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["provider"] == "gmailService" and body["user"] == "alice@example.test"
    assert body["accessToken"].startswith("at-") and body["cached"] is False
    assert idp.service_stats()["subjects"] == {"alice@example.test": 1}
    stored = await core.redis.hgetall(core.keys.account("box1"))
    assert "refreshToken" not in stored
    again = await (await client.get("/v1/account/box1/oauth-token", headers=admin)).json()
    assert again["cached"] is True and idp.service_stats()["jwt_bearer_ok"] == 1


async def test_withdrawn_delegation_marks_that_account(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A subject whose delegation is withdrawn needs re-authorization; the app stays clean."""
    key_file = await gmail_service_app(core, idp)
    await add(client, admin, "gone", "gsvc", "gone@example.test")
    idp.delegate(str(key_file["client_email"]), "gone@example.test", allowed=False)
    resp = await client.get("/v1/account/gone/oauth-token", headers=admin)
    assert resp.status >= 400
    account = await core.accounts.require("gone")
    assert account.status == Status.REAUTH_REQUIRED and account.reason == "delegationRefused"
    assert "error" not in (await core.apps.require("gsvc")).fields


async def test_revoked_key_is_app_error(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A key the provider no longer accepts flags the app; the account stays active."""
    key_file = await gmail_service_app(core, idp)
    await add(client, admin, "box", "gsvc", "bob@example.test")
    idp.revoke_service_key(str(key_file["client_email"]))
    resp = await client.get("/v1/account/box/oauth-token", headers=admin)
    assert resp.status >= 400
    assert (await core.accounts.require("box")).status == Status.ACTIVE
    flagged = orjson.loads((await core.apps.require("gsvc")).fields["error"])
    assert flagged["error"] == "invalid_grant" and "Signature" in flagged["error_description"]
    await add(client, admin, "box2", "gsvc", "bob2@example.test")
    resp = await client.get("/v1/account/box2/oauth-token", headers=admin)
    assert resp.status >= 400 and idp.service_stats()["jwt_bearer_requests"] == 1  # remembered
    app = await core.apps.require("gsvc")
    await core.apps.update(
        app, {"serviceClientEmail": "other@test.iam"}, iso(SystemClock().now_ms())
    )
    assert (
        await core.refresher.grants.app_tokens.refused(app) is None
    )  # a changed app is asked again


@pytest.mark.parametrize("forgery", ["wrong_key", "wrong_audience"])
async def test_forged_assertion_refused(core: Core, idp: Idp, forgery: str) -> None:
    """The provider refuses an assertion signed by another key or for another audience."""
    key_file = await gmail_service_app(core, idp)
    other = idp.service_account()
    signer = other if forgery == "wrong_key" else key_file
    key = parse_service_key(orjson.dumps(signer).decode())
    signed = assertion(
        key,
        issuer=str(key_file["client_email"]),
        subject="carol@example.test",
        scopes=["https://mail.google.com/"],
        audience="https://elsewhere.example/token"
        if forgery == "wrong_audience"
        else idp.token_url,
        now_s=SystemClock().now_ms() // 1000,
    )
    app = await core.apps.require("gsvc")
    result = await core.refresher.oauth.grant(app, {"grant_type": JWT_BEARER, "assertion": signed})
    assert isinstance(result, Failure) and jwt_failure(result).kind == "app"


async def test_one_app_token_serves_every_account(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """Accounts of an outlookService app share its one client-credentials token."""
    await outlook_service_app(core, idp)
    app = await core.apps.require("osvc")
    assert app.scopes == ["https://graph.microsoft.com/.default"]
    tokens = set()
    for n in range(5):
        await add(client, admin, f"m{n}", "osvc", f"m{n}@example.test")
        resp = await client.get(f"/v1/account/m{n}/oauth-token", headers=admin)
        body = await resp.json()
        assert resp.status == 200 and body["user"] == f"m{n}@example.test", body
        tokens.add(body["accessToken"])
    assert len(tokens) == 1 and idp.service_stats()["client_credentials_ok"] == 1
    cached = await core.refresher.grants.app_tokens.cached(app)
    assert isinstance(cached, Granted) and cached.access_token in tokens
    raw = await core.redis.hgetall(core.keys.app_token("osvc"))
    assert cached.access_token not in str(raw)
    await core.apps.update(app, {"clientSecret": idp.client_secret}, iso(SystemClock().now_ms()))
    assert await core.refresher.grants.app_tokens.cached(app) is None  # new credentials, new token


async def test_refused_client_credentials_flag_the_app(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """invalid_client for the app's token is an app error; its accounts stay active."""
    await outlook_service_app(core, idp)
    await core.apps.update(
        await core.apps.require("osvc"), {"clientSecret": "wrong"}, iso(SystemClock().now_ms())
    )
    await add(client, admin, "m", "osvc", "m@example.test")
    resp = await client.get("/v1/account/m/oauth-token", headers=admin)
    assert resp.status >= 400
    assert (await core.accounts.require("m")).status == Status.ACTIVE
    assert orjson.loads((await core.apps.require("osvc")).fields["error"])["error"] == (
        "invalid_client"
    )


async def test_dod_cloud_scopes() -> None:
    """OutlookService in the dod cloud asks DoD Graph, or Exchange Online with baseScopes imap."""
    from service.providers import app_only_scopes, builtin_endpoints

    assert app_only_scopes("dod", None) == ["https://dod-graph.microsoft.us/.default"]
    assert app_only_scopes("dod", "imap") == ["https://outlook-dod.office365.us/.default"]
    assert app_only_scopes("gcc-high", "imap") == ["https://outlook.office365.us/.default"]
    assert app_only_scopes("global", "imap") == ["https://outlook.office365.com/.default"]
    ends = builtin_endpoints("outlookService", TENANT, "dod")
    assert ends.token_url == f"https://login.microsoftonline.us/{TENANT}/oauth2/v2.0/token"


async def test_app_token_falls_over_to_the_next_secret(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """An outlookService app whose current secret expired gets its token with the next one."""
    register_secret(idp, "next", NEXT_SECRET)
    await outlook_service_app(core, idp)
    app = await core.apps.require("osvc")
    await core.apps.update(app, {"nextClientSecret": NEXT_SECRET}, iso(SystemClock().now_ms()))
    expire_credential(idp, "default")
    await add(client, admin, "m", "osvc", "m@example.test")
    resp = await client.get("/v1/account/m/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    app = await core.apps.require("osvc")
    assert "error" not in app.fields and app.fields["credentialInUse"] == "next"
    tried = [(a["name"], a["ok"]) for a in auth_attempts(idp)]
    assert tried == [("default", False), ("next", True)]
