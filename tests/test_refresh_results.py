"""The grant fence: a refresh result for a replaced or deleted grant writes nothing and is revoked.

Each test is one reproduction of the security review, made deterministic by the test
provider holding the refresh request (a `delay_ms` fault) while the grant changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from service import errors
from service.account_outcomes import Written
from service.accounts import AccountWrite
from service.clock import SystemClock, iso
from service.core import Core
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.polling import refreshes_reach

Client = TestClient[web.Request, web.Application]
SCOPE = "openid email profile offline_access mail.read"
HOLD_MS = 1500  # how long the provider holds the refresh while the grant changes


async def put_account(
    client: Client,
    headers: dict[str, str],
    app: str,
    account: str,
    minted: dict[str, Any],
    user: str,
) -> Any:
    """Import (or re-import) an account with a minted grant; returns the response."""
    oauth2 = {
        "provider": app,
        "auth": {"user": user},
        "refreshToken": minted["refresh_token"],
        "accessToken": minted["access_token"],
        "expires": iso(SystemClock().now_ms() + 3_600_000),
    }
    return await client.post(
        "/v1/account", json={"account": account, "oauth2": oauth2}, headers=headers
    )


def held_refresh(client: Client, headers: dict[str, str], account: str) -> asyncio.Task[Any]:
    """Start a forced refresh through the API; it waits at the provider for HOLD_MS."""
    return asyncio.create_task(client.post(f"/v1/account/{account}/refresh", headers=headers))


async def stored_refresh_token(core: Core, account: str) -> str:
    """The account's refresh token as stored (decrypted)."""
    return core.accounts.refresh_token(await core.accounts.require(account))


async def test_reimport_during_refresh_keeps_the_new_grant(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, idp: Idp, enabled: None
) -> None:
    """A re-import (new user, new grant) during a refresh of the old grant survives it whole."""
    old = idp.mint("alice", SCOPE)
    assert (await put_account(client, admin, oidc_app, "victim", old, "alice@x.test")).status == 200
    idp.fault("delay_ms", ms=HOLD_MS)
    refresh = held_refresh(client, admin, "victim")
    await refreshes_reach(idp, 1)
    new = idp.mint("bob", SCOPE)
    assert (await put_account(client, admin, oidc_app, "victim", new, "bob@x.test")).status == 200
    await (await refresh).release()
    assert await stored_refresh_token(core, "victim") == new["refresh_token"]
    resp = await client.get("/v1/account/victim/oauth-token", headers=admin)
    body = await resp.json()
    assert (body["user"], body["accessToken"]) == ("bob@x.test", new["access_token"])
    assert (await asyncio.to_thread(idp.stats))["revocations"] == 1  # alice's rotated token
    status, _ = await asyncio.to_thread(idp.refresh, new["refresh_token"])
    assert status == 200  # bob's grant still works at the provider


async def test_invalid_grant_of_the_old_grant_leaves_the_new_one_active(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, idp: Idp
) -> None:
    """invalid_grant for a replaced grant, answered after the re-import, marks nothing."""
    old = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", old, "alice@x.test")
    await asyncio.to_thread(idp.revoke, str(old["refresh_token"]))
    idp.fault("delay_ms", ms=HOLD_MS)
    refresh = held_refresh(client, admin, "victim")
    await refreshes_reach(idp, 1)
    new = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", new, "alice@x.test")
    await (await refresh).release()
    account = await core.accounts.require("victim")
    assert account.status == "active" and account.last_error is None
    assert await stored_refresh_token(core, "victim") == new["refresh_token"]


async def test_reimport_of_the_same_refresh_token_adopts_the_rotated_one(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, idp: Idp
) -> None:
    """A re-import that repeats the very refresh token in flight keeps the rotated successor."""
    grant = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", grant, "alice@x.test")
    idp.fault("delay_ms", ms=HOLD_MS)
    refresh = held_refresh(client, admin, "victim")
    await refreshes_reach(idp, 1)
    await put_account(client, admin, oidc_app, "victim", grant, "alice@x.test")
    assert (await refresh).status == 200
    rotated = await stored_refresh_token(core, "victim")
    assert rotated != grant["refresh_token"]
    status, _ = await asyncio.to_thread(idp.refresh, rotated)
    assert status == 200 and (await asyncio.to_thread(idp.stats))["revocations"] == 0


async def test_delete_during_refresh_revokes_the_rotated_token(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, idp: Idp
) -> None:
    """Deleting during a refresh revokes the old token and, when it arrives, the rotated one."""
    grant = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", grant, "alice@x.test")
    idp.fault("answer_delay_ms", ms=HOLD_MS)  # rotated before the delete
    refresh = held_refresh(client, admin, "victim")
    await refreshes_reach(idp, 1)
    deleted = await client.delete("/v1/account/victim?revoke=true", headers=admin)
    assert (await deleted.json())["deleted"] is True
    resp = await refresh
    assert resp.status == 404 and (await resp.json())["code"] == "AccountNotFound"
    assert (await asyncio.to_thread(idp.stats))["revocations"] == 2
    assert await core.accounts.get("victim") is None


@pytest.fixture
async def foreign() -> AsyncIterator[tuple[str, list[str]]]:
    """A token URL controlled by an API caller: (URL, bodies it received)."""
    received: list[str] = []

    async def token(request: web.Request) -> web.Response:
        received.append(await request.text())
        return web.json_response({"error": "invalid_grant"}, status=400)

    app = web.Application()
    app.router.add_post("/token", token)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/token")), received
    await server.close()


async def test_reimport_onto_another_app_is_refused(
    client: Client,
    core: Core,
    admin: dict[str, str],
    oidc_app: str,
    idp: Idp,
    foreign: tuple[str, list[str]],
) -> None:
    """An api token cannot move a victim to an app whose token URL it controls (409)."""
    url, received = foreign
    body = {"id": "evil", "provider": "oidc", "clientId": "x", "clientSecret": "y", "tokenUrl": url}
    assert (await client.post("/v1/oauth2", json=body, headers=admin)).status in (200, 201)
    api = {"Authorization": f"Bearer {await make_token(core, 'api')}"}
    grant = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", grant, "alice@x.test")
    idp.fault("delay_ms", ms=HOLD_MS)
    refresh = held_refresh(client, admin, "victim")
    await refreshes_reach(idp, 1)
    moved = await put_account(client, api, "evil", "victim", idp.mint("eve", SCOPE), "e@x.test")
    assert moved.status == 409 and (await moved.json())["code"] == "AccountAppMismatch"
    assert (await refresh).status == 200
    assert (await client.post("/v1/account/victim/refresh", headers=admin)).status == 200
    account = await core.accounts.require("victim")
    assert account.app == oidc_app and account.user == "alice@x.test"
    assert received == []


async def test_a_changed_token_url_never_receives_an_accounts_refresh_token(
    client: Client,
    core: Core,
    admin: dict[str, str],
    oidc_app: str,
    idp: Idp,
    foreign: tuple[str, list[str]],
) -> None:
    """Endpoints changed behind the freeze check: the refresh is refused, nothing is sent."""
    url, received = foreign
    await put_account(client, admin, oidc_app, "victim", idp.mint("alice", SCOPE), "alice@x.test")
    await core.redis.hset(core.keys.app(oidc_app), "tokenUrl", url)
    core.cache.invalidate(f"app:{oidc_app}")
    resp = await client.post("/v1/account/victim/refresh", headers=admin)
    assert resp.status == 409 and (await resp.json())["code"] == "ReauthRequired"
    account = await core.accounts.require("victim")
    assert (account.status, account.reason) == ("reauth_required", "appEndpointsChanged")
    assert received == []


async def test_stale_results_write_nothing(core: Core, oidc_app: str) -> None:
    """Each result script compares the grant generation it was given; stale ones write nothing."""
    now = core.clock.now_ms()
    write = AccountWrite(app=oidc_app, provider="oidc", user="u", refresh_token="r1")
    first = await core.accounts.save("acc", write, now, now, {})
    before = await core.accounts.require("acc")
    second = await core.accounts.save("acc", write, now, now, {})
    assert (first.state, second.state, second.grant_gen) == ("new", "existing", first.grant_gen + 1)
    pairs = core.accounts.fields("acc", AccountWrite(access_token="stale"), now)
    stale = Written.SUPERSEDED
    assert await core.accounts.store_tokens(before, "", pairs, now, [], now) == stale
    assert await core.accounts.mark_reauth(before, "", "invalidGrant", {}, now) == stale
    assert await core.accounts.note_failure(before, "", {}, now) == stale
    after = await core.accounts.require("acc")
    assert after.status == "active" and after.encrypted_access is None and after.attempts == 0


async def test_authentication_error_keeps_status_and_http_status_apart(
    client: Client,
    core: Core,
    admin: dict[str, str],
    import_account: Callable[..., Awaitable[dict[str, Any]]],
    idp: Idp,
) -> None:
    """The authenticationError event says status reauth_required and the provider's httpStatus."""
    await core.settings.update({"webhooksEnabled": True, "webhooks": "https://hooks.example.com/x"})
    await import_account("victim")
    idp.fault("error", error="invalid_grant")
    resp = await client.post("/v1/account/victim/refresh", headers=admin)
    assert resp.status == 409
    stream = core.keys.events(core.keys.partition_of("victim"))
    entries = cast(list[tuple[str, dict[str, str]]], await core.redis.xrange(stream))
    payloads = [fields["payload"] for _, fields in entries]
    event = next(p for p in payloads if '"authenticationError"' in p)
    assert '"status":"reauth_required"' in event and '"httpStatus":400' in event


async def test_refresh_of_a_deleted_account_revokes_and_reports_not_found(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, idp: Idp
) -> None:
    """A refresh whose account is deleted meanwhile raises AccountNotFound and revokes."""
    grant = idp.mint("alice", SCOPE)
    await put_account(client, admin, oidc_app, "victim", grant, "alice@x.test")
    idp.fault("answer_delay_ms", ms=HOLD_MS)
    with capture_logs() as logs:
        refresh = asyncio.create_task(core.refresher.refresh("victim", 0, force=True))
        await refreshes_reach(idp, 1)
        await client.delete("/v1/account/victim", headers=admin)
        with pytest.raises(errors.AccountNotFound):
            await refresh
    assert any(line["event"] == "orphan_refresh_token_revoked" for line in logs)
