"""A claim whose reply is lost is retried with its claim id and gets the same accounts back.

The reply is lost for real: a TCP proxy between the worker and Redis forwards the claim,
lets Redis run it, then drops the connection instead of passing the reply on.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from service.clock import ManualClock
from service.config import Config
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from service.store.scripts import script_source
from tests.support.broker import running_broker
from tests.support.idp import Idp
from tests.support.processes import now_ms
from tests.support.tcp_proxy import TcpProxy
from workers.worker import Worker

MINUTE = 60_000
CLAIM_SHA = hashlib.sha1(script_source("schedule_claim").encode()).hexdigest().encode()  # noqa: S324
Adder = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def proxy(redis_server: RedisProcess) -> AsyncIterator[TcpProxy]:
    """A proxy in front of the test Redis."""
    proxy = TcpProxy("127.0.0.1", redis_server.port)
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def proxied(
    worker_config: Config, clock: ManualClock, proxy: TcpProxy, app_id: str
) -> AsyncIterator[Worker]:
    """A Worker that reaches the test Redis only through the proxy."""
    config = dataclasses.replace(worker_config, redis_url=proxy.url)
    client = create_redis(config)
    async with aiohttp.ClientSession() as http:
        yield Worker(config, client, http, clock)
    await client.aclose()


async def due_accounts(add_account: Adder, clock: ManualClock, count: int) -> list[str]:
    """`count` accounts, all due now."""
    ids = [f"lost{i}" for i in range(count)]
    for account in ids:
        await add_account(account, expires_in_s=600)
    clock.advance(6 * MINUTE)
    return ids


async def test_lost_claim_reply_is_retried_with_the_same_accounts(
    proxied: Worker, proxy: TcpProxy, add_account: Adder, clock: ManualClock, idp: Idp
) -> None:
    """The client's own retry of a claim whose reply was lost refreshes the claimed accounts."""
    await due_accounts(add_account, clock, 5)
    idp.reset()
    proxy.lose_replies(CLAIM_SHA, proxied.core.keys.schedule(0).encode())
    await proxied.run(burst=True)
    assert proxy.lost == 1, "the claim ran and its reply was lost"
    assert idp.stats()["refresh_requests"] == 5, "none left parked for the lease"


async def test_claim_round_repeated_after_a_store_error_gets_the_same_accounts(
    proxied: Worker, proxy: TcpProxy, add_account: Adder, clock: ManualClock
) -> None:
    """Both tries of a claim lose their reply: the next round reuses the id and gets them."""
    ids = await due_accounts(add_account, clock, 5)
    proxy.lose_replies(CLAIM_SHA, proxied.core.keys.schedule(0).encode(), count=2)
    with pytest.raises(RedisConnectionError):
        await proxied.refresh.claim_round()
    assert proxy.lost == 2
    claimed = await proxied.refresh.claim_round()
    assert sorted(account for account, _ in claimed) == ids
    assert await proxied.refresh.claim_round() == [], "a later round claims afresh"


@pytest.mark.timeout(60)
async def test_worker_process_recovers_a_lost_claim_reply_at_once(tmp_path: Path, idp: Idp) -> None:
    """A `tokenbroker worker` whose claim reply is lost refreshes those accounts within 15 s.

    The lease is 60 s: without the claim id the accounts would wait for it to pass.
    """
    async with running_broker(tmp_path, idp) as broker:
        proxy = TcpProxy("127.0.0.1", broker.server.port)
        await proxy.start()
        try:
            ids = [f"proc{i}" for i in range(10)]
            await broker.import_accounts(ids, valid_ms=120_000, lifetime_ms=3_600_000, due_in_ms=0)
            start = now_ms()
            proxy.lose_replies(CLAIM_SHA, broker.core.keys.schedule(0).encode())
            broker.spawn_worker("worker", REDIS_URL=proxy.url)

            async def all_refreshed() -> bool:
                accounts = await broker.accounts(ids)
                return all((a.refreshed_at_ms or 0) > start for a in accounts.values())

            await broker.wait_until(all_refreshed, "every account refreshed", 15)
            assert proxy.lost == 1
        finally:
            await proxy.close()
