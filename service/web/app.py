"""create_app(config): the aiohttp application with its resources and routes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import AsyncIterator

import aiohttp_jinja2
import jinja2
import orjson
from aiohttp import web

from service.admin_auth import AdminAuth
from service.audit import AuditCounters
from service.background import Background, stop_task
from service.clock import Clock, SystemClock, iso
from service.config import Config
from service.core import build_core, seed_settings
from service.metrics import Metrics
from service.outbound.session import outbound_session
from service.store.connection import create_redis
from service.web.admin.middleware import admin_site
from service.web.appkeys import (
    ADMIN,
    BACKGROUND,
    CLOCK,
    CONFIG,
    CORE,
    HTTP,
    METRICS,
    OPENAPI,
    REDIS,
    REQUEST_IDS,
)
from service.web.middleware import request_ids, request_middleware
from service.web.openapi_doc import build_document
from service.web.routes import add_routes
from service.web.templates import templates_dir


async def redis_ctx(app: web.Application) -> AsyncIterator[None]:
    """The Redis client."""
    app[REDIS] = create_redis(app[CONFIG])
    yield
    await app[REDIS].aclose()


async def http_ctx(app: web.Application) -> AsyncIterator[None]:
    """The outbound HTTP client (providers, the webhook test event), guarded and capped."""
    app[HTTP] = outbound_session(app[CONFIG])
    yield
    await app[HTTP].close()


async def core_ctx(app: web.Application) -> AsyncIterator[None]:
    """The stores, cache and refresher; first-start settings seeds; search-index backfill."""
    app[CORE] = build_core(app[CONFIG], app[REDIS], app[HTTP], app[CLOCK])
    app[CORE].refresher.incident = app[METRICS].count_incident
    with contextlib.suppress(Exception):  # Redis may be down at start; /ready says so
        await seed_settings(app[CORE])
    backfill = asyncio.create_task(app[CORE].accounts.search.backfill_quietly())
    yield
    backfill.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await backfill
    await asyncio.to_thread(app[CORE].tracing.shutdown)  # the spans still buffered


async def admin_ctx(app: web.Application) -> AsyncIterator[None]:
    """The settings pages' operator account: password, login limits, sessions."""
    app[ADMIN] = AdminAuth(app[REDIS], app[CORE].keys)
    yield


async def background_ctx(app: web.Application) -> AsyncIterator[None]:
    """The cache listener and the API tokens' last-use flush (written at shutdown too)."""
    app[BACKGROUND] = Background(app[CORE])
    app[BACKGROUND].start()
    yield
    await app[BACKGROUND].stop()


async def audit_ctx(app: web.Application) -> AsyncIterator[None]:
    """The audit trail's flusher: buffered token-answer records, written at shutdown too."""
    audit = app[CORE].audit
    metrics = app[METRICS]
    audit.counters = AuditCounters(
        written=metrics.audit_written.inc,
        failed=lambda n: metrics.audit_flush_failures.inc(),
        dropped=metrics.audit_dropped.inc,
    )
    task = asyncio.create_task(audit.run(), name="audit-flush")
    yield
    await stop_task(task)
    await audit.flush()  # survives a store failure (counted and logged)


async def freeze_heap(app: web.Application) -> None:
    """Exempt what start-up built from the cyclic collector's full passes (gc.freeze).

    The web process's start-up heap (~80k objects: modules, routes, templates, the OpenAPI
    document) is scanned by every full collection, ~25 ms each under load: a pause that every
    request in flight waits out. Frozen, a full pass scans only what came after. Runs after
    the cleanup contexts' start-up (on_startup runs them first); the web command's only.
    """
    gc.collect()
    gc.freeze()


def create_app(config: Config, clock: Clock | None = None) -> web.Application:
    """Build the web application for `config`."""
    middlewares = [request_middleware(admin_site(config))]
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes)
    app[CONFIG] = config
    app[CLOCK] = clock or SystemClock()
    app[OPENAPI] = orjson.dumps(build_document())
    app[REQUEST_IDS] = request_ids()
    app[METRICS] = Metrics()
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        autoescape=True,
        filters={"iso": iso},
    )
    app.cleanup_ctx.extend([redis_ctx, http_ctx, core_ctx, admin_ctx, background_ctx, audit_ctx])
    add_routes(app)
    return app
