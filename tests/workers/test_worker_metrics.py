"""The worker's own metrics: its heartbeat time and whether Redis answers it (for the alerts)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from service.store.embedded import RedisProcess, free_port
from tests.support.observed import fetch_text
from tests.support.processes import WorkerProc, start_worker, wait_until, worker_env
from tests.test_cli import SECRET_B64

BEAT = "tokenbroker_worker_last_beat_timestamp_seconds"
STORE_UP = "tokenbroker_store_up"


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private redis-server this test may stop and start (the session one is never stopped)."""
    server = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


def value(text: str, name: str) -> float | None:
    """The value of the unlabelled sample `name`, or None when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


@pytest.mark.timeout(90)
async def test_heartbeat_and_store_up_follow_redis(own_redis: RedisProcess, tmp_path: Path) -> None:
    """The beat advances and store_up is 1 with Redis; store_up turns 0 while it is stopped."""
    port, log = free_port(), tmp_path / "worker.log"
    env = worker_env(
        own_redis.url,
        SECRET_B64,
        tmp_path,
        TOKENBROKER_WORKER_METRICS_PORT=str(port),
        TOKENBROKER_REDIS_TIMEOUT_S="0.5",
    )
    worker = WorkerProc("worker", start_worker([], env, tmp_path, log), log)
    url = f"http://127.0.0.1:{port}/metrics"
    first: list[float] = []

    async def beating() -> bool:
        beat = value(await fetch_text(url), BEAT)
        if beat and not first:
            first.append(beat)
        return bool(beat and beat > first[0])

    async def store_up_is(wanted: float, what: str) -> None:
        async def reads() -> bool:
            return value(await fetch_text(url), STORE_UP) == wanted

        await wait_until(reads, what, 20, poll_s=0.1, workers=[worker], diagnostics=worker.tail)

    try:
        await wait_until(
            beating, "two heartbeats", 20, poll_s=0.1, workers=[worker], diagnostics=worker.tail
        )
        assert abs(first[0] - time.time()) < 30, "a Unix time, as Prometheus' time() reads it"
        await store_up_is(1.0, "store_up 1 with Redis running")
        await asyncio.to_thread(own_redis.stop)
        await store_up_is(0.0, "store_up 0 with Redis stopped")
        await asyncio.to_thread(own_redis.start)
        await store_up_is(1.0, "store_up 1 again after the restart")
    finally:
        assert await worker.stop() == 0, worker.tail()
