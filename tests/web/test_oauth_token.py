"""The token endpoint: auth, enablement, refresh on demand and failure answers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.conftest import make_token
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]
PAST = "2020-01-01T00:00:00.000Z"


async def test_disabled_by_default(
    client: Client, admin: dict[str, str], import_account: Importer
) -> None:
    """The endpoint answers 403 ApiEndpointDisabled until an operator enables it."""
    await import_account()
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert resp.status == 403
    assert (await resp.json())["code"] == "ApiEndpointDisabled"


async def test_serves_imported_token(
    client: Client, admin: dict[str, str], import_account: Importer, enabled: None, idp: Idp
) -> None:
    """A valid imported token is served from the store without calling the provider."""
    minted = await import_account()
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store"
    assert body["accessToken"] == minted["access_token"]
    assert body["user"] == "example@example.test"
    assert body["provider"] == "oidc" and body["app"] == "idp" and body["cached"] is True
    assert "mail.read" in body["registeredScopes"]
    assert idp.stats()["refresh_requests"] == 0


async def test_expired_token_is_refreshed_and_rotated(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
    core: Core,
) -> None:
    """An expired token is refreshed on demand; the rotated refresh token is stored and works."""
    minted = await import_account(expires=PAST)
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["cached"] is False and body["accessToken"] != minted["access_token"]
    account = await core.accounts.require("example")
    stored = core.accounts.refresh_token(account)
    assert stored != minted["refresh_token"]
    status, _ = idp.refresh(minted["refresh_token"])
    assert status == 400  # the old one was rotated away
    resp = await client.get("/v1/account/example/oauth-token?minValidity=1800", headers=admin)
    assert resp.status in (200,)
    assert idp.stats()["refresh_requests"] >= 2


async def test_min_validity_forces_refresh(
    client: Client, admin: dict[str, str], import_account: Importer, enabled: None, idp: Idp
) -> None:
    """A token with less than minValidity seconds left is refreshed first."""
    soon = iso(SystemClock().now_ms() + 120_000)
    await import_account(expires=soon)
    resp = await client.get("/v1/account/example/oauth-token?minValidity=60", headers=admin)
    assert (await resp.json())["cached"] is True
    resp = await client.get("/v1/account/example/oauth-token?minValidity=600", headers=admin)
    assert (await resp.json())["cached"] is False
    assert idp.stats()["refresh_requests"] == 1


async def test_bad_min_validity(client: Client, admin: dict[str, str], enabled: None) -> None:
    """MinValidity outside 0..1800 or not an integer is 400 InvalidMinValidity."""
    for value in ("-1", "1801", "abc", "1.5"):
        resp = await client.get(f"/v1/account/x/oauth-token?minValidity={value}", headers=admin)
        assert resp.status == 400
        assert (await resp.json())["code"] == "InvalidMinValidity"


async def test_invalid_grant_marks_reauth(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
    core: Core,
) -> None:
    """invalid_grant answers 409 ReauthRequired with the provider error, status reauth_required."""
    await import_account(expires=PAST)
    idp.fault(
        "error",
        error="invalid_grant",
        error_description="AADSTS70008: The refresh token has expired due to inactivity.",
        error_codes=[70008],
    )
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 409, body
    assert body["code"] == "ReauthRequired"
    assert body["details"]["error"] == "invalid_grant"
    account = await core.accounts.require("example")
    assert account.status == "reauth_required" and account.reason == "expired"
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert resp.status == 409
    assert idp.stats()["refresh_requests"] == 1


async def test_transient_failure_serves_valid_token(
    client: Client, admin: dict[str, str], import_account: Importer, enabled: None, idp: Idp
) -> None:
    """A 503 from the provider while the token is still valid serves it with refreshFailed."""
    minted = await import_account(expires=iso(SystemClock().now_ms() + 120_000))
    idp.fault("status", status=503)
    resp = await client.get("/v1/account/example/oauth-token?minValidity=600", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["refreshFailed"] is True and body["accessToken"] == minted["access_token"]


async def test_provider_down_with_expired_token(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
    core: Core,
) -> None:
    """Provider failing, no valid token: 503 ProviderUnavailable, Retry-After, still active."""
    await import_account(expires=PAST)
    idp.fault("status", status=429, retry_after="7")
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 503, body
    assert body["code"] == "ProviderUnavailable" and resp.headers["Retry-After"] == "7"
    assert (await core.accounts.require("example")).status == "active"
    idp.fault("drop")
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert resp.status == 503
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert resp.status == 200  # the refresh token survived both failures


async def test_app_credentials_error(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
    core: Core,
) -> None:
    """invalid_client without a valid token: 503 AppCredentialsError, app flagged, account kept."""
    await import_account(expires=PAST)
    idp.fault("error", status=401, error="invalid_client")
    resp = await client.get("/v1/account/example/oauth-token", headers=admin)
    body = await resp.json()
    assert resp.status == 503 and body["code"] == "AppCredentialsError", body
    assert (await core.accounts.require("example")).status == "active"
    app = await core.apps.require("idp")
    assert "error" in app.fields


async def test_concurrent_fetches_refresh_once(
    client: Client,
    make_client: Callable[..., Awaitable[Client]],
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
) -> None:
    """100 concurrent fetches of an expired token over two web apps cause one provider call."""
    await import_account(expires=PAST)
    other = await make_client()
    idp.fault("delay_ms", ms=300)
    resps = await asyncio.gather(
        *[
            c.get("/v1/account/example/oauth-token", headers=admin)
            for _ in range(50)
            for c in (client, other)
        ]
    )
    bodies = [await r.json() for r in resps]
    assert all(r.status == 200 for r in resps), bodies
    assert len({b["accessToken"] for b in bodies}) == 1
    assert idp.stats()["refresh_requests"] == 1


async def test_account_bound_token(
    client: Client, core: Core, import_account: Importer, enabled: None
) -> None:
    """A token bound to one account gets 403 on another and 200 on its own."""
    await import_account("one")
    await import_account("two")
    token = await make_token(core, "oauth-tokens", account="one")
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/account/one/oauth-token", headers=headers)).status == 200
    resp = await client.get("/v1/account/two/oauth-token", headers=headers)
    assert resp.status == 403 and (await resp.json())["code"] == "Forbidden"


async def test_api_token_last_use_is_recorded(
    client: Client, core: Core, import_account: Importer, enabled: None
) -> None:
    """A token's last use is kept in memory, then written in a batch; revoked ones stay gone."""
    await import_account()
    token, meta = await core.tokens.create(["oauth-tokens"], None, "t", None, 0)
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/account/example/oauth-token", headers=headers)).status == 200
    await core.token_service.flush_token_uses()
    listed = {t.id: t for t in await core.tokens.all()}
    assert listed[meta.id].last_used_ms is not None
    assert listed[meta.id].public()["lastUsed"].endswith("Z")
    assert (await client.get("/v1/account/example/oauth-token", headers=headers)).status == 200
    await core.tokens.revoke(meta.id)
    await core.token_service.flush_token_uses()
    assert meta.id not in {t.id for t in await core.tokens.all()}
    assert not await core.redis.exists(core.keys.api_token(meta.digest))


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ({"kind": "status", "status": 429, "retry_after": "7"}, "ProviderUnavailable"),
        ({"kind": "error", "status": 401, "error": "invalid_client"}, "AppCredentialsError"),
        ({"kind": "error", "status": 400, "error": "invalid_grant"}, "ReauthRequired"),
    ],
)
async def test_a_refresh_failure_answers_alike_on_every_route(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    idp: Idp,
    fault: dict[str, object],
    code: str,
) -> None:
    """The token endpoint and a forced refresh answer one failure with the same error."""
    await import_account(expires=PAST)
    idp.faults([fault] if code == "ReauthRequired" else [fault, fault])
    fetched = await client.get("/v1/account/example/oauth-token", headers=admin)
    forced = await client.post("/v1/account/example/refresh", headers=admin)
    answers = [(r.status, await r.json(), r.headers.get("Retry-After")) for r in (fetched, forced)]
    assert answers[0][1]["code"] == code, answers
    if code == "ReauthRequired":  # the first failure marked it: the second names its record
        assert answers[1][1]["code"] == code and answers[0][0] == answers[1][0] == 409
        return
    assert answers[0] == answers[1]
