"""`tokenbroker worker`'s /metrics: on loopback unless TOKENBROKER_WORKER_METRICS_HOST says so."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from service.store.embedded import RedisProcess, free_port
from tests.support.processes import WorkerProc, start_worker, wait_until, worker_env
from tests.test_cli import SECRET_B64

OTHER_LOOPBACK = "127.0.0.2"  # a loopback address too, but not the one bound by default


async def scrape(host: str, port: int) -> int | None:
    """The status of GET /metrics at host:port, or None when nothing accepts the connection."""
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://{host}:{port}/metrics") as resp,
        ):
            return resp.status
    except aiohttp.ClientConnectionError:
        return None


async def metrics_reach(redis_server: RedisProcess, tmp_path: Path, **extra: str) -> int | None:
    """Start a worker with a metrics port (and `extra`); scrape it on 127.0.0.2 once it serves."""
    port = free_port()
    env = worker_env(
        redis_server.url, SECRET_B64, tmp_path, TOKENBROKER_WORKER_METRICS_PORT=str(port), **extra
    )
    log = tmp_path / "worker.log"
    worker = WorkerProc("worker", start_worker([], env, tmp_path, log), log)

    async def serving() -> bool:
        return await scrape("127.0.0.1", port) == 200

    try:
        await wait_until(
            serving,
            "the worker's /metrics on 127.0.0.1",
            20,
            poll_s=0.05,
            workers=[worker],
            diagnostics=worker.tail,
        )
        return await scrape(OTHER_LOOPBACK, port)
    finally:
        assert await worker.stop() == 0, worker.tail()


@pytest.mark.timeout(60)
async def test_metrics_bind_loopback_by_default(redis_server: RedisProcess, tmp_path: Path) -> None:
    """Without TOKENBROKER_WORKER_METRICS_HOST the port takes no connection but 127.0.0.1's."""
    assert await metrics_reach(redis_server, tmp_path) is None


@pytest.mark.timeout(60)
async def test_metrics_host_configurable(redis_server: RedisProcess, tmp_path: Path) -> None:
    """TOKENBROKER_WORKER_METRICS_HOST=0.0.0.0 serves every address (a pod scraped in-cluster)."""
    reach = await metrics_reach(redis_server, tmp_path, TOKENBROKER_WORKER_METRICS_HOST="0.0.0.0")  # noqa: S104
    assert reach == 200
