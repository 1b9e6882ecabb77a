"""Admin page of webhook deliveries: recent, retrying and dead letters; redeliver."""

from __future__ import annotations

from aiohttp import web

from service import errors
from service.web.admin.render import flash_redirect, page
from service.web.admin.session import admin_page
from service.web.appkeys import CORE
from service.webhooks.deliveries import Deliveries

SHOWN = 50


@admin_page
async def list_deliveries(request: web.Request) -> web.StreamResponse:
    """Dead letters, retrying and delivered events, newest first."""
    core = request.app[CORE]
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    context = {
        "dead": await deliveries.list("failed", SHOWN),
        "pending": await deliveries.list("pending", SHOWN),
        "delivered": await deliveries.list("delivered", SHOWN),
    }
    return await page(request, "deliveries.html", context)


@admin_page
async def redeliver(request: web.Request) -> web.StreamResponse:
    """Queue a dead letter again."""
    core = request.app[CORE]
    msg_id = request.match_info["id"]
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    if not msg_id.startswith("msg_") or not await deliveries.redeliver(msg_id, core.clock.now_ms()):
        raise errors.DeliveryNotFound(f"no dead letter with id {msg_id!r}")
    raise await flash_redirect(request, "/admin/deliveries", f"Event {msg_id} queued again.")
