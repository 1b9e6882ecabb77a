"""GET /metrics: Prometheus metrics of accounts and the schedule, read at scrape time."""

from __future__ import annotations

from aiohttp import web

from service.schedule import Schedule
from service.web.appkeys import CORE, METRICS
from service.web.io import authorize
from service.webhooks.deliveries import Deliveries


async def metrics(request: web.Request) -> web.Response:
    """Render the process's metrics; needs a token with the `metrics` scope."""
    await authorize(request, "metrics")
    core, registry = request.app[CORE], request.app[METRICS]
    scheduled, overdue = await Schedule(core.redis, core.keys, core.scripts).depth(
        core.clock.now_ms()
    )
    registry.scheduled.set(scheduled)
    registry.overdue.set(overdue)
    for status, count in (await core.accounts.count_by_status()).items():
        registry.accounts.labels(status).set(count)
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    waiting, age_ms = await deliveries.backlog(core.clock.now_ms())
    registry.backlog.set(waiting)
    registry.backlog_age.set(age_ms / 1000)
    registry.dead_letters.set(await deliveries.dead_count())
    return web.Response(body=registry.render(), content_type="text/plain")
