"""A web app and a worker process doing some work, both scraped: what the dashboard reads."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import iso
from service.core import Core
from service.store.embedded import free_port
from tests.conftest import make_token
from tests.support.processes import WorkerProc, start_worker, wait_until, worker_env
from tests.test_cli import SECRET_B64

Client = TestClient[web.Request, web.Application]
DEAD_RECEIVER = "http://127.0.0.1:9/hooks"  # nothing listens: every delivery is retried


@dataclass
class Observed:
    """Where the web and the worker serve /metrics, the web's scrape token, and scrapes."""

    client: Client
    web_target: str
    worker_target: str
    token: str
    token_file: Path
    worker: WorkerProc
    admin: dict[str, str]  # headers with a `*` token, for token requests

    async def web_text(self) -> str:
        """GET /metrics of the web app, with the `metrics` token."""
        headers = {"Authorization": f"Bearer {self.token}"}
        resp = await self.client.get("/metrics", headers=headers)
        assert resp.status == 200, await resp.text()
        return await resp.text()

    async def worker_text(self) -> str:
        """GET /metrics of the worker process (no authentication)."""
        return await fetch_text(f"http://{self.worker_target}/metrics")


async def fetch_text(url: str) -> str:
    """The body of a 200 answer to GET `url` ("" when nothing answers or not 200)."""
    try:
        async with aiohttp.ClientSession() as http, http.get(url) as resp:
            return await resp.text() if resp.status == 200 else ""
    except aiohttp.ClientConnectionError:
        return ""


async def traffic(client: Client, headers: dict[str, str]) -> None:
    """Token requests: answered, a bad minValidity and an unknown account."""
    paths = ["later/oauth-token"] * 3 + ["later/oauth-token?minValidity=x", "nobody/oauth-token"]
    for path in paths:
        await client.get(f"/v1/account/{path}", headers=headers)


@contextlib.asynccontextmanager
async def observed_service(
    client: Client,
    core: Core,
    redis_url: str,
    tmp_path: Path,
    import_account: Callable[..., Awaitable[dict[str, Any]]],
) -> AsyncIterator[Observed]:
    """Accounts (one due at once), token requests, a worker that refreshed and tried a webhook."""
    await core.settings.update(
        {"enableOAuthTokensApi": True, "webhooks": DEAD_RECEIVER, "webhooksEnabled": True}
    )
    admin = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    resp = await client.post("/v1/settings/webhook-secret", headers=admin)
    assert resp.status == 200, await resp.text()
    await import_account("later")
    await import_account("soon", expires=iso(int(time.time() * 1000) + 2000))
    await traffic(client, admin)
    token = await make_token(core, "metrics")
    token_file = tmp_path / "metrics.token"
    token_file.write_text(token)
    port, log = free_port(), tmp_path / "worker.log"
    env = worker_env(redis_url, SECRET_B64, tmp_path, TOKENBROKER_WORKER_METRICS_PORT=str(port))
    worker = WorkerProc("worker", start_worker([], env, tmp_path, log), log)
    seen = Observed(
        client,
        f"127.0.0.1:{client.server.port}",
        f"127.0.0.1:{port}",
        token,
        token_file,
        worker,
        admin,
    )

    async def worked() -> bool:
        text = await seen.worker_text()
        return 'outcome="refreshed"' in text and "tokenbroker_webhook_deliveries_total{" in text

    try:
        await wait_until(
            worked,
            "a refresh and a delivery attempt on the worker's /metrics",
            30,
            poll_s=0.1,
            workers=[worker],
            diagnostics=worker.tail,
        )
        yield seen
    finally:
        assert await worker.stop() == 0, worker.tail()
