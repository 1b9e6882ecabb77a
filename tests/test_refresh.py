"""The Refresher against a slow provider: sent refreshes awaited, lost answers double-checked."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient
from structlog.testing import capture_logs

from service.accounts import AccountWrite
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.refresh import Refreshed, RefreshFailed
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.polling import eventually, refreshes_reach

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
SCOPE = "openid email profile offline_access mail.read"


async def slow_setup(make_client: MakeClient, config: Config, idp: Idp) -> tuple[Client, Core]:
    """A web app whose provider timeout (0.5 s) is shorter than the provider's answers."""
    cfg = dataclasses.replace(config, provider_timeout_s=0.5, provider_answer_max_s=1.0)
    client = await make_client(cfg)
    core: Core = client.app[CORE]
    body = {
        "id": "idp",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "revocationUrl": idp.revocation_url,
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    await core.settings.update({"enableOAuthTokensApi": True})
    return client, core


async def save(core: Core, refresh: str, previous: str | None = None) -> None:
    """An account 'slow' holding `refresh` (and `previous`), without an access token."""
    now = core.clock.now_ms()
    write = AccountWrite(
        app="idp",
        provider="oidc",
        user="slow@x.test",
        refresh_token=refresh,
        previous_refresh_token=previous,
        scopes=SCOPE.split(),
    )
    await core.accounts.save("slow", write, now, now, {})


async def test_an_answer_slower_than_the_timeout_is_kept(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """An answer after 0.7 s (> the 0.5 s timeout): 503 now, the new token on a later request."""
    client, core = await slow_setup(make_client, config, idp)
    await save(core, str(idp.mint("slow", SCOPE)["refresh_token"]))
    headers = {"Authorization": f"Bearer {await make_token(core, 'oauth-tokens')}"}
    idp.fault("answer_delay_ms", ms=700)
    resp = await client.get("/v1/account/slow/oauth-token", headers=headers)
    assert resp.status == 503 and resp.headers["Retry-After"] == "2"  # no valid token yet
    assert (await resp.json())["details"]["error"] == "refresh_pending"

    async def served() -> bool:
        resp = await client.get("/v1/account/slow/oauth-token", headers=headers)
        return resp.status == 200

    await eventually(served, 10, "the refreshed token to be served", every_s=0.05)
    stored = core.accounts.refresh_token(await core.accounts.require("slow"))
    status, _ = await asyncio.to_thread(idp.refresh, stored)
    assert status == 200  # the rotated token reached us: the grant lives on


async def test_an_answer_that_never_comes_is_remembered_as_lost(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """A sent refresh whose answer never comes is given up (answer_max_s) and marked lost."""
    _, core = await slow_setup(make_client, config, idp)
    await save(core, str(idp.mint("slow", SCOPE)["refresh_token"]))
    idp.fault("hang", ms=5000)
    outcome = await core.refresher.refresh("slow", 60_000)
    assert isinstance(outcome, RefreshFailed) and outcome.failure.sent
    account = await core.accounts.require("slow")
    assert account.status == "active" and account.answer_lost_ms is not None


async def test_after_a_lost_answer_the_previous_token_gets_one_more_check(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """invalid_grant after a lost answer: the kept previous token refreshes; no reauth."""
    _, core = await slow_setup(make_client, config, idp)
    dead = str(idp.mint("slow", SCOPE)["refresh_token"])
    await asyncio.to_thread(idp.revoke, dead)
    good = str(idp.mint("slow", SCOPE)["refresh_token"])
    await save(core, dead, previous=good)
    account = await core.accounts.require("slow")
    lost = await core.accounts.note_failure(account, "", {"error": "timeout"}, 0, 1)
    assert lost == 1
    with capture_logs() as logs:
        outcome = await core.refresher.refresh("slow", 60_000)
    assert isinstance(outcome, Refreshed) and outcome.called
    events = [line["event"] for line in logs]
    assert "refresh_recovered_with_previous_token" in events
    account = await core.accounts.require("slow")
    assert account.status == "active" and account.answer_lost_ms is None


async def test_without_a_lost_answer_the_previous_token_rescues_the_grant(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """invalid_grant with the current token (a lost rotation, an old backup): previous works."""
    _, core = await slow_setup(make_client, config, idp)
    dead = str(idp.mint("slow", SCOPE)["refresh_token"])
    await asyncio.to_thread(idp.revoke, dead)
    await save(core, dead, previous=str(idp.mint("slow", SCOPE)["refresh_token"]))
    outcome: Any = await core.refresher.refresh("slow", 60_000)
    assert isinstance(outcome, Refreshed) and outcome.called
    assert (await core.accounts.require("slow")).status == "active"


async def test_invalid_grant_with_both_tokens_is_final(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """Current and previous refused: re-consent after exactly one more provider call."""
    _, core = await slow_setup(make_client, config, idp)
    dead, older = (str(idp.mint("slow", SCOPE)["refresh_token"]) for _ in range(2))
    for token in (dead, older):
        await asyncio.to_thread(idp.revoke, token)
    await save(core, dead, previous=older)
    requests = (await asyncio.to_thread(idp.stats))["refresh_requests"]
    outcome: Any = await core.refresher.refresh("slow", 60_000)
    assert isinstance(outcome, RefreshFailed) and outcome.failure.kind == "permanent"
    assert (await asyncio.to_thread(idp.stats))["refresh_requests"] == requests + 2


async def test_on_demand_refreshes_share_the_apps_slots(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """With one on-demand slot per app, a second account's refresh waits, then is refused."""
    cfg = dataclasses.replace(config, web_refresh_concurrency=1, provider_timeout_s=0.5)
    client = await make_client(cfg)
    core: Core = client.app[CORE]
    body = {"id": "idp", "provider": "oidc", "clientId": idp.client_id, "tokenUrl": idp.token_url}
    await core.apps.create({**body, "clientSecret": idp.client_secret}, iso(core.clock.now_ms()))
    for name in ("one", "two"):
        now = core.clock.now_ms()
        grant = str(idp.mint(name, SCOPE)["refresh_token"])
        write = AccountWrite(app="idp", provider="oidc", user=name, refresh_token=grant)
        await core.accounts.save(name, write, now, now, {})
    idp.fault("answer_delay_ms", ms=1500)
    first = asyncio.create_task(core.refresher.refresh("one", 60_000, app="idp"))
    await refreshes_reach(idp, 1)
    second = await core.refresher.refresh("two", 60_000, app="idp")
    assert isinstance(second, RefreshFailed)
    assert second.failure.error in ("busy", "refresh_pending")  # both give up after 0.5 s
    assert (await asyncio.to_thread(idp.stats))["refresh_requests"] == 1  # two never went
    assert isinstance(await first, RefreshFailed)  # one's caller gave up too; its refresh goes on


async def test_a_caller_that_goes_away_does_not_abandon_the_refresh(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """The caller is cancelled while the refresh is at the provider: the answer is still stored."""
    _, core = await slow_setup(make_client, config, idp)
    grant = str(idp.mint("slow", SCOPE)["refresh_token"])
    await save(core, grant)
    idp.fault("answer_delay_ms", ms=700)
    caller = asyncio.create_task(core.refresher.refresh("slow", 60_000))
    await refreshes_reach(idp, 1)
    caller.cancel()

    async def rotated() -> bool:
        return core.accounts.refresh_token(await core.accounts.require("slow")) != grant

    await eventually(rotated, 10, "the rotated token stored")
    stored = core.accounts.refresh_token(await core.accounts.require("slow"))
    assert (await asyncio.to_thread(idp.refresh, stored))[0] == 200


async def test_an_on_demand_caller_waits_at_most_the_provider_timeout(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """A web caller gets refresh_pending after 0.5 s; the refresh goes on and is stored."""
    _, core = await slow_setup(make_client, config, idp)
    grant = str(idp.mint("slow", SCOPE)["refresh_token"])
    await save(core, grant)
    idp.fault("answer_delay_ms", ms=800)  # > the 0.5 s timeout, < the 1 s answer cap
    outcome = await core.refresher.refresh("slow", 60_000, app="idp")
    # refresh_pending is answered only when the caller's wait ran out before the answer
    assert isinstance(outcome, RefreshFailed) and outcome.failure.error == "refresh_pending"

    async def stored() -> bool:
        account = await core.accounts.require("slow")
        return core.accounts.refresh_token(account) != grant

    await eventually(stored, 10, "the refresh to go on and store the rotated token")


async def test_a_lock_held_elsewhere_past_the_deadline_is_refresh_in_progress(
    make_client: MakeClient, config: Config, idp: Idp
) -> None:
    """Another process holding the account's lock beyond the wait ends in refresh_in_progress."""
    _, core = await slow_setup(make_client, config, idp)
    await save(core, str(idp.mint("slow-user", SCOPE)["refresh_token"]))
    lock_key = core.keys.lock("slow")
    await core.redis.set(lock_key, "another-process", px=60_000)
    try:
        before = idp.stats()["refresh_requests"]
        outcome = await core.refresher.refresh("slow", 60_000, force=True)
    finally:
        await core.redis.delete(lock_key)
    assert isinstance(outcome, RefreshFailed), outcome
    assert outcome.failure.error == "refresh_in_progress"
    assert idp.stats()["refresh_requests"] == before  # the holder's refresh is not repeated
