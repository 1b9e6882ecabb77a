"""The refresh loop and grant deadlines: a rotation that says when its token dies moves it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from service.clock import ManualClock
from tests.support.idp import Idp
from workers.worker import Worker

Adder = Callable[..., Awaitable[dict[str, Any]]]
MINUTE = 60_000
DAY = 86_400


async def test_rotation_with_refresh_token_expires_in_moves_the_deadline(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp
) -> None:
    """A rotated token's lifetime becomes the deadline; an unrotated answer's is ignored."""
    core = worker.core
    await add_account(expires_in_s=600)
    assert (await core.accounts.require("a1")).grant_deadline_ms is None
    idp.refresh_lifetime(2 * DAY)
    clock.advance(6 * MINUTE)
    sent_at = clock.now_ms()
    await worker.run(burst=True)
    account = await core.accounts.require("a1")
    assert account.grant_deadline_ms == sent_at + 2 * DAY * 1000
    assert account.grant_deadline_from == "refresh_token_expires_in"
    key = core.keys.grant_deadlines(core.keys.partition_of("a1"))
    assert await core.redis.zscore(key, "a1") == account.grant_deadline_ms
    idp.refresh_lifetime(60)
    idp.fault("no_refresh_token")
    clock.advance(60 * MINUTE)
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 2
    kept = await core.accounts.require("a1")
    assert kept.refreshed_at_ms == clock.now_ms()
    assert kept.grant_deadline_ms == account.grant_deadline_ms
    assert await core.redis.zscore(key, "a1") == account.grant_deadline_ms
