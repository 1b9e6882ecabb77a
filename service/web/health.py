"""Liveness and readiness: /health (process up) and /ready (Redis answers)."""

from __future__ import annotations

import asyncio

from aiohttp import web

from service import errors
from service.store.connection import STORE_ERRORS
from service.web.appkeys import CONFIG, REDIS
from service.web.io import json_response


async def health(request: web.Request) -> web.Response:
    """The process is up."""
    return json_response({"status": "ok"})


async def ready(request: web.Request) -> web.Response:
    """Redis answers a PING within the configured timeout."""
    try:
        async with asyncio.timeout(request.app[CONFIG].redis_timeout_s):
            await request.app[REDIS].ping()
    except (TimeoutError, *STORE_ERRORS):
        raise errors.StoreUnavailable("the store (Redis) does not answer") from None
    return json_response({"status": "ready"})
