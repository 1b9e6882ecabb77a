"""`make dashboard-picture`: a web and a worker under load, scraped by Prometheus, then drawn.

Not a test: it runs for DURATION_S against the test provider and a webhook receiver of its own
(down for the first part), with refused refresh tokens and rejected app credentials injected
at the provider on the way, then asks Prometheus the dashboard's own queries over the run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from service import logs
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.store.embedded import RedisProcess, free_port
from service.web.app import create_app
from service.web.appkeys import CORE
from tests.conftest import TEST_SECRET, make_token
from tests.pictures.draw import Series, draw, legend
from tests.support.idp import Idp
from tests.support.processes import WorkerProc, start_worker, stop_processes, worker_env
from tests.support.prometheus import Prometheus, scrape_config
from tests.support.promql import as_prometheus_query, dashboard, panels
from tests.test_cli import SECRET_B64

DURATION_S, ACCOUNTS, LIFETIME_S, REQUESTS_PER_S = 180.0, 24, 60, 25
RATE_INTERVAL, STEP_S = "30s", 2.0


async def receiver(until: float) -> tuple[web.AppRunner, str]:
    """A webhook receiver that answers 503 until `until` (Unix time), then 204."""

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=503 if time.time() < until else 204)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/hooks"


async def seed(core: Core, http: aiohttp.ClientSession, base: str, idp: Idp, hook: str) -> str:
    """The app, accounts due soon, the token endpoint and webhooks on; returns a `*` token."""
    token = await make_token(core, "*")
    headers = {"Authorization": f"Bearer {token}"}
    app = {"id": "mail", "provider": "oidc", "clientId": idp.client_id}
    app |= {"clientSecret": idp.client_secret, "issuer": idp.issuer, "tokenUrl": idp.token_url}
    await core.apps.create(app, iso(SystemClock().now_ms()))
    await core.settings.update({"enableOAuthTokensApi": True, "webhooks": hook})
    await core.settings.update({"webhooksEnabled": True})
    async with http.post(f"{base}/v1/settings/webhook-secret", headers=headers) as resp:
        assert resp.status == 200, await resp.text()
    for i in range(ACCOUNTS):
        minted = idp.mint(f"user{i}")
        expires = iso(SystemClock().now_ms() + random.randint(5, LIFETIME_S) * 1000)
        oauth2: dict[str, Any] = {"provider": "mail", "auth": {"user": f"user{i}@example.test"}}
        oauth2 |= {"refreshToken": minted["refresh_token"], "accessToken": minted["access_token"]}
        body = {"account": f"acct{i}", "oauth2": oauth2 | {"expires": expires}}
        async with http.post(f"{base}/v1/account", json=body, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
    return token


def one_request(base: str) -> str:
    """A token request URL: mostly plain, some forcing a refresh, some bad or unknown."""
    roll, account = random.random(), random.randrange(ACCOUNTS)
    if roll < 0.03:
        return f"{base}/v1/account/acct{account}/oauth-token?minValidity=soon"
    if roll < 0.05:
        return f"{base}/v1/account/nobody/oauth-token"
    if roll < 0.08:
        return f"{base}/v1/account/acct{account}/oauth-token?minValidity=1800"
    return f"{base}/v1/account/acct{account}/oauth-token?minValidity=5"  # the worker keeps ahead


async def load(http: aiohttp.ClientSession, base: str, token: str, idp: Idp, end: float) -> None:
    """Token requests at REQUESTS_PER_S; provider faults on a timeline; short token lifetimes."""
    headers, started = {"Authorization": f"Bearer {token}"}, time.time()
    timeline: list[tuple[float, list[dict[str, object]]]] = [
        (0.30, [{"kind": "status", "status": 503}] * 6),
        (0.40, [{"kind": "error", "error": "invalid_grant"}] * 7),
        (0.60, [{"kind": "error", "status": 401, "error": "invalid_client"}] * 10),
    ]
    while (now := time.time()) < end:
        if timeline and now - started >= timeline[0][0] * (end - started):
            await asyncio.to_thread(idp.faults, timeline.pop(0)[1])
        elif (await asyncio.to_thread(idp.stats))["faults_pending"] < 4:
            lifetime = {"kind": "expires_in", "value": LIFETIME_S}
            await asyncio.to_thread(idp.faults, [lifetime] * 8)
        for _ in range(REQUESTS_PER_S):
            async with http.get(one_request(base), headers=headers) as resp:
                await resp.read()
            await asyncio.sleep(1 / REQUESTS_PER_S)


async def panel_data(prometheus: Prometheus, start: float, end: float) -> dict[int, Series]:
    """Each panel's series over the run, from Prometheus, named by the targets' legendFormat."""
    data: dict[int, Series] = {}
    for panel in panels(dashboard()):
        series: Series = []
        for target in panel["targets"]:
            expr = as_prometheus_query(target["expr"], RATE_INTERVAL)
            for result in await prometheus.query_range(expr, start, end, STEP_S):
                points = [(float(t), float(v)) for t, v in result["values"]]
                series.append((legend(target["legendFormat"], result["metric"]), points))
        data[panel["id"]] = series
    return data


async def start_web(stack: AsyncExitStack, redis_url: str) -> tuple[web.Application, str]:
    """The web app on a free loopback port, stopped with `stack`; the app and its base URL."""
    config = Config(
        redis_url=redis_url, secret_key=TEST_SECRET, base_url="http://127.0.0.1:8080",
        allow_private_urls=True, allow_endpoint_overrides=True,
    )  # fmt: skip
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return app, f"http://127.0.0.1:{port}"


async def run(out: Path, duration_s: float, workdir: Path) -> None:
    """Start everything, load it for `duration_s`, draw the picture into `out`."""
    async with AsyncExitStack() as stack:
        redis = RedisProcess(workdir / "redis")
        await asyncio.to_thread(redis.start)
        stack.callback(redis.stop)
        idp = await asyncio.to_thread(Idp.start)
        stack.callback(idp.stop)
        started = time.time()
        hook_runner, hook = await receiver(started + duration_s * 0.45)
        stack.push_async_callback(hook_runner.cleanup)
        app, base = await start_web(stack, redis.url)
        http = await stack.enter_async_context(aiohttp.ClientSession())
        token = await seed(app[CORE], http, base, idp, hook)
        worker_port = free_port()
        worker = start_worker_for(redis.url, workdir, worker_port)
        stack.callback(stop_processes, [worker.process])
        token_file = workdir / "metrics.token"
        token_file.write_text(await make_token(app[CORE], "metrics"))
        web_target, worker_target = base.removeprefix("http://"), f"127.0.0.1:{worker_port}"
        config = scrape_config(web_target, token_file, worker_target, 1.0)
        prometheus = Prometheus.start(config, workdir / "prometheus")
        stack.callback(prometheus.stop)
        await load(http, base, token, idp, started + duration_s)
        data = await panel_data(prometheus, started, time.time())
    caption = (
        "tokenbroker dashboard (deploy/grafana/tokenbroker.json): each panel drawn from "
        f"Prometheus' answers to its own queries over a {duration_s:.0f} s run of "
        "`make dashboard-picture` (matplotlib, not Grafana)"
    )
    draw(dashboard(), data, out, caption)


def start_worker_for(redis_url: str, workdir: Path, port: int) -> WorkerProc:
    """The worker process: metrics on `port`, webhooks retried for a minute only."""
    env = worker_env(
        redis_url, SECRET_B64, workdir,
        TOKENBROKER_WORKER_METRICS_PORT=str(port),
        TOKENBROKER_WEBHOOK_RETRY_BUDGET_S="60",
        TOKENBROKER_WEBHOOK_RETRY_BASE_MS="2000",
    )  # fmt: skip
    log = workdir / "worker.log"
    return WorkerProc("worker", start_worker([], env, workdir, log), log)


def main() -> None:
    """`python -m tests.pictures.dashboard OUT.png [--seconds N]`."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("out", type=Path)
    args.add_argument("--seconds", type=float, default=DURATION_S)
    ns = args.parse_args()
    logs.configure("console", stream=sys.stderr, level=logging.WARNING)  # no line per request
    with tempfile.TemporaryDirectory() as workdir:
        asyncio.run(run(ns.out, ns.seconds, Path(workdir)))
    print(f"wrote {ns.out}")


if __name__ == "__main__":
    main()
