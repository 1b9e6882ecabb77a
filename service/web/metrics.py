"""GET /metrics: Prometheus metrics of accounts and the schedule, read at scrape time."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from service import errors
from service.core import Core
from service.credential_watch import expiries
from service.grant_watch import HOUR_MS, WEEK_MS, GrantWatch
from service.metrics import Metrics
from service.schedule import Schedule
from service.store.connection import STORE_ERRORS
from service.web.appkeys import CORE, METRICS
from service.web.io import authorize
from service.webhooks.deliveries import Deliveries

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    await _app_credentials(core, registry)
    await _grants_expiring(core, registry)
    registry.cache_lookups.follow(core.cache)
    return web.Response(body=registry.render(), content_type="text/plain")


async def _app_credentials(core: Core, registry: Metrics) -> None:
    """Per app: 1 while its credentials are rejected; each credential's seconds to expiry.

    Deleted apps' series go; a dead credential's seconds are negative.
    """
    apps = await core.apps.all()
    now = core.clock.now_ms()
    registry.app_credentials_error.clear()  # no await from here on: a scrape sees all or none
    registry.app_credential_expiry.clear()
    for app in apps:
        registry.app_credentials_error.labels(app.id).set(1 if "error" in app.fields else 0)
        for expiry in expiries(app, now, core.config):
            registry.app_credential_expiry.labels(app.id, expiry.slot).set(expiry.left_ms / 1000)


async def _grants_expiring(core: Core, registry: Metrics) -> None:
    """Active accounts whose grant has a known deadline within 48 hours and within 7 days."""
    watch = GrantWatch(core.accounts, core.links, core.config, core.clock)
    registry.grants_expiring.labels("48h").set(await watch.count(48 * HOUR_MS))
    registry.grants_expiring.labels("7d").set(await watch.count(WEEK_MS))


def counted(handler: Handler) -> Handler:
    """Count the token endpoint's answers by code and time them (one counter, one histogram)."""

    @functools.wraps(handler)
    async def measure(request: web.Request) -> web.StreamResponse:
        started, code = time.perf_counter(), errors.InternalError.code
        try:
            response = await handler(request)
            code = "ok"
            return response
        except errors.ApiError as exc:
            code = exc.code
            raise
        except STORE_ERRORS:
            code = errors.StoreUnavailable.code
            raise
        except asyncio.CancelledError:  # the client went away
            code = "Cancelled"
            raise
        finally:
            request.app[METRICS].count_token_request(code, time.perf_counter() - started)

    return measure
