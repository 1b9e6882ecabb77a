"""The held refresh lock: extended during a provider call, given up only when lost, freed late."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from service.config import Config
from service.refresh_lock import AnswerAbandoned, HeldLock, take, take_durably
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from service.store.replicas import ReplicaWait
from service.store.scripts import Scripts
from tests.support.polling import eventually

KEY = "tb:{p0}:lock:acc"


async def slow(value: str, seconds: float) -> str:
    """A provider call that answers `value` after `seconds`."""
    await asyncio.sleep(seconds)
    return value


async def test_a_slow_answer_is_awaited_while_the_lock_is_extended(redis: Redis) -> None:
    """An answer that outlives the lock's first life arrives; the lock stays ours meanwhile."""
    lock = await take(redis, Scripts(redis), KEY, "mine", 300)
    assert lock is not None
    assert await lock.hold_during(slow("granted", 1.0), answer_max_s=10) == "granted"
    assert await redis.get(KEY) == "mine"
    assert 0 < await redis.pttl(KEY) <= 300


async def test_a_lost_lock_abandons_the_call(redis: Redis) -> None:
    """When another holder has the lock, the call is given up before the lock's life is out."""
    lock = await take(redis, Scripts(redis), KEY, "mine", 600)
    assert lock is not None
    await redis.set(KEY, "theirs", px=600)
    call = asyncio.ensure_future(slow("late", 5))
    started = time.monotonic()
    with pytest.raises(AnswerAbandoned):
        await lock.hold_during(call, answer_max_s=10)
    assert call.cancelled() and time.monotonic() - started < 5  # not the 5 s answer


async def test_the_answer_wait_is_capped(redis: Redis) -> None:
    """No answer is awaited longer than answer_max_s, however long the lock lives."""
    lock = await take(redis, Scripts(redis), KEY, "mine", 10_000)
    assert lock is not None
    with pytest.raises(AnswerAbandoned):
        await lock.hold_during(slow("never", 5), answer_max_s=0.3)


async def test_only_one_holder(redis: Redis) -> None:
    """take() fails while someone holds the lock and works once it is released."""
    scripts = Scripts(redis)
    first = await take(redis, scripts, KEY, "one", 10_000)
    assert first is not None and await take(redis, scripts, KEY, "two", 10_000) is None
    await first.release(set())
    assert first.released and await take(redis, scripts, KEY, "two", 10_000) is not None


async def test_a_durable_take_is_one_holders_and_survives_its_own_retry(redis: Redis) -> None:
    """take_durably sets a free lock with its life, refuses another value, keeps a repeat's."""
    wait = ReplicaWait(redis, Scripts(redis), 500)  # a lone server: nothing to wait for
    first = await take_durably(wait, KEY, "one", 10_000)
    assert first is not None and await redis.get(KEY) == "one"
    assert 9_000 < await redis.pttl(KEY) <= 10_000
    assert await take_durably(wait, KEY, "two", 10_000) is None
    again = await take_durably(wait, KEY, "one", 10_000)  # a retried call whose reply was lost
    assert again is not None and await redis.get(KEY) == "one"
    await first.release(set())
    assert await take_durably(wait, KEY, "two", 10_000) is not None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private redis-server (AOF on) that a test may stop and start."""
    server = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def test_a_release_that_failed_happens_when_redis_returns(
    store: RedisProcess, config: Config
) -> None:
    """A lock whose release met a dead Redis is freed within 2 s of Redis answering again."""
    redis = create_redis(dataclasses.replace(config, redis_url=store.url))
    try:
        lock = await take(redis, Scripts(redis), KEY, "mine", 30_000)
        assert isinstance(lock, HeldLock)
        await asyncio.to_thread(store.stop)  # SIGTERM: the AOF keeps the lock
        background: set[asyncio.Task[None]] = set()
        await lock.release(background)
        assert not lock.released and background
        await asyncio.to_thread(store.start)
        await eventually(lambda: lock.released, 2, "the lock released after Redis' return")
        assert await redis.exists(KEY) == 0
    finally:
        await redis.aclose()
