"""Issue 17 as processes: a slow provider, or a Redis restart, must not lose accounts or stall.

Web, workers, Redis (AOF) and the real rotating provider run as processes; the provider
finishes every refresh it started, even for a client that gave up, as real ones do. Each
test checks afterwards that no account needs its user again and that the provider accepts
exactly the refresh token we store for each account (no newer one we never learned, no
older one still alive).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.broker import kill_redis, running_broker
from tests.support.idp import Idp
from tests.support.load import LoadResult, TokenClient
from tests.support.slow_provider import SlowProvider, run_slow_provider

ISSUE = "issue 17: fixed by the refresh-path change"
TTL_S = 30
HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def rotating_idp() -> Iterator[Idp]:
    """A provider of its own whose access tokens live 30 s (refresh tokens rotate on use)."""
    provider = Idp.start(access_token_ttl_s=TTL_S)
    yield provider
    provider.stop()


@pytest.mark.timeout(150)
async def test_slow_provider_under_load_loses_no_account(tmp_path: Path, rotating_idp: Idp) -> None:
    """300 accounts, 200 req/s, provider answers in 8-12 s for 40 s: every account survives."""
    # The reported run slowed the provider for 60 s (`make bench` runs exactly that); 40 s
    # loses every account just the same and keeps this test under a minute.
    scenario = SlowProvider(window_s=40.0, after_s=10.0)
    run = await run_slow_provider(tmp_path, rotating_idp, scenario)
    assert not run.loss.lost and run.loss.stale == 0, f"{scenario.describe()}:\n{run.summary()}"
    assert run.unheard == 0, run.summary()


@pytest.mark.timeout(120)
async def test_answers_just_under_the_timeout_lose_no_account(
    tmp_path: Path, rotating_idp: Idp
) -> None:
    """200 concurrent on-demand refreshes answered in 9-9.8 s (timeout 10 s): none lost."""
    async with running_broker(tmp_path, rotating_idp, TOKENBROKER_APP_RATE_PER_S="1000") as broker:
        ids = [f"burst{i:03d}" for i in range(200)]
        # 15 s left of 30 s tokens, due for the workers only in an hour: the web refreshes
        await broker.import_accounts(
            ids, valid_ms=15_000, lifetime_ms=TTL_S * 1000, due_in_ms=HOUR_MS
        )
        await broker.start_web()
        broker.spawn_worker("worker-a")
        broker.spawn_worker("worker-b")
        rotating_idp.reset()
        rotating_idp.delay(9_000, 9_800, 60_000)
        async with TokenClient(broker.base_url, broker.api_token, min_validity_s=20) as client:
            load = await client.burst(ids)
        rotating_idp.clear_delay()
        await broker.quiet(timeout_s=30)
        stats = rotating_idp.stats()
        loss = await broker.loss(ids)
    summary = f"{loss.summary()}; {stats}\nclients: {load.summary()}"
    assert not loss.lost and loss.stale == 0, summary
    assert stats["refresh_unheard"] == 0, summary


@pytest.mark.timeout(120)
async def test_tokens_served_within_2_s_of_redis_returning(
    tmp_path: Path, rotating_idp: Idp
) -> None:
    """Redis SIGKILLed while the web holds refresh locks, restarted from its AOF: 200 in 2 s."""
    env = {"TOKENBROKER_REDIS_TIMEOUT_S": "0.5", "TOKENBROKER_WEB_REFRESH_CONCURRENCY": "16"}
    async with running_broker(tmp_path, rotating_idp, **env) as broker:
        ids = [f"outage{i}" for i in range(10)]
        # expired tokens, left to the web (due for the worker only in an hour)
        await broker.import_accounts(
            ids, valid_ms=-1_000, lifetime_ms=TTL_S * 1000, due_in_ms=HOUR_MS
        )
        await broker.start_web()
        broker.spawn_worker("worker")
        rotating_idp.reset()
        # the provider answers every refresh 3 s late: 5 fail (no rotation), 5 succeed
        rotating_idp.faults(
            [{"kind": "hang", "ms": 3_000}] * 5 + [{"kind": "delay_ms", "ms": 3_000}] * 5
        )
        locks = [broker.core.keys.lock(account) for account in ids]
        async with TokenClient(broker.base_url, broker.api_token, min_validity_s=20) as client:
            before = LoadResult()
            pending = [asyncio.create_task(client.get(account, before)) for account in ids]

            async def all_locked() -> bool:
                in_flight = rotating_idp.stats()["refresh_in_flight"]
                return in_flight == 10 and await broker.redis.exists(*locks) == 10

            await broker.wait_until(all_locked, "10 refreshes at the provider under locks", 20)
            await asyncio.to_thread(kill_redis, broker.server)
            # the 5 failures reach the web while Redis is down; the 5 rotations wait for it
            await broker.wait_until(
                lambda: sum(before.statuses.values()) >= 5, "5 failed refreshes answered", 20
            )
            await asyncio.to_thread(broker.server.start)
            after = LoadResult()
            answers = await asyncio.gather(*(client.get(account, after) for account in ids))
            # each request starts at once: its own wait is (almost) the time since the return
            waited = {a: (status, round(s, 1)) for a, (status, s) in zip(ids, answers, strict=True)}
            await asyncio.gather(*pending)
        await broker.quiet(timeout_s=30)
        loss = await broker.loss(ids)
    late = {a: w for a, w in waited.items() if w[0] != 200 or w[1] > 2.0}
    assert not late, f"(status, seconds after Redis returned): {late}\nfirst: {before.summary()}"
    assert not after.refresh_failed, after.summary()
    assert not loss.lost and loss.stale == 0, loss.summary()
