"""stop_task's grace period, repeated cancel and deadline; Background's one-time stop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from service.background import Background, stop_task
from service.clock import SystemClock
from service.config import Config
from service.core import Core, build_core


@pytest.fixture
async def core(config: Config, redis: Redis) -> AsyncIterator[Core]:
    """A Core on the test Redis (no web app around it)."""
    async with aiohttp.ClientSession() as http:
        yield build_core(config, redis, http, SystemClock())


async def finishing(rounds: int) -> str:
    """Work that ends by itself after a few turns of the loop."""
    for _ in range(rounds):
        await asyncio.sleep(0)
    return "done"


async def stubborn(cancels_to_swallow: int, swallowing: asyncio.Event | None = None) -> None:
    """Work that swallows cancels as redis-py may inside connect(): some, or while `swallowing`."""
    swallowed = 0
    while True:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed += 1
            still = swallowing is not None and swallowing.is_set()
            if swallowed > cancels_to_swallow and not still:
                raise


async def test_work_that_ends_within_the_grace_period_is_not_cancelled() -> None:
    """With a grace period, a task that finishes by itself keeps its result."""
    task = asyncio.create_task(finishing(3))
    assert await stop_task(task, grace_s=5.0)
    assert not task.cancelled() and task.result() == "done"


async def test_a_swallowed_cancel_is_repeated_until_the_task_ends() -> None:
    """A task that ignores two cancels is still stopped; stopping it again is harmless."""
    task = asyncio.create_task(stubborn(2))
    await asyncio.sleep(0)  # let it start waiting
    assert await stop_task(task)
    assert task.cancelled()
    assert await stop_task(task)


async def test_a_task_that_never_ends_is_given_up_at_the_deadline() -> None:
    """stop_task returns False after its deadline instead of waiting forever."""
    swallowing = asyncio.Event()
    swallowing.set()
    task = asyncio.create_task(stubborn(0, swallowing))
    await asyncio.sleep(0)
    assert not await stop_task(task, deadline_s=0.3)
    assert not task.done()
    swallowing.clear()  # now it gives in
    assert await stop_task(task)


async def test_stop_flushes_token_uses_once_and_ends_the_tasks(core: Core, redis: Redis) -> None:
    """stop() ends both tasks, writes the last token uses; a second stop() does nothing."""
    _, token = await core.tokens.create(["api"], None, None, None, 1_000)
    background = Background(core)
    background.start()
    core.token_service.token_uses[token.digest] = 2_000
    await background.stop()
    assert all(task.done() for task in background.tasks)
    assert await redis.hget(core.keys.api_token(token.digest), "lastUsed") == "2000"
    core.token_service.token_uses[token.digest] = 3_000
    await background.stop()
    assert await redis.hget(core.keys.api_token(token.digest), "lastUsed") == "2000"
