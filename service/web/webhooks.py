"""Webhook routes: rotate the signing secret, list deliveries, redeliver, send a test event."""

from __future__ import annotations

from aiohttp import web

from service import errors, limits, validate
from service.web.appkeys import CONFIG, CORE, HTTP
from service.web.io import authorize, json_response
from service.webhook_probe import MSG_ID, send_test_event
from service.webhooks.deliveries import STATUSES, Deliveries
from service.webhooks.secrets import WebhookSecrets
from service.webhooks.sender import Sender


async def rotate_secret(request: web.Request) -> web.Response:
    """Make a new webhook secret, shown only in this answer; the old one works for a day."""
    await authorize(request, "api")
    core = request.app[CORE]
    secret = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(core.clock.now_ms())
    return json_response({"secret": secret}, headers={"Cache-Control": "no-store"})


async def list_deliveries(request: web.Request) -> web.Response:
    """Recent deliveries with one status: pending (retrying), failed (dead) or delivered."""
    await authorize(request, "api")
    status = request.query.get("status", "failed")
    if status not in STATUSES:
        raise errors.InvalidInput(
            f"status must be one of {', '.join(STATUSES)}", details={"field": "status"}
        )
    limit = validate.integer(request.query.get("limit"), "limit", limits.DELIVERIES)
    core = request.app[CORE]
    found = await Deliveries(core.redis, core.keys, core.scripts).list(status, limit)
    return json_response({"status": status, "deliveries": found})


async def redeliver(request: web.Request) -> web.Response:
    """Queue a dead letter again, due now."""
    await authorize(request, "api")
    msg_id = request.match_info["id"]
    if not msg_id.startswith(MSG_ID) or len(msg_id) > limits.MSG_ID_MAX:
        raise errors.DeliveryNotFound(f"no dead letter with id {msg_id!r}")
    core = request.app[CORE]
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    if not await deliveries.redeliver(msg_id, core.clock.now_ms()):
        raise errors.DeliveryNotFound(f"no dead letter with id {msg_id!r}")
    return json_response({"id": msg_id, "queued": True})


async def send_test(request: web.Request) -> web.Response:
    """Send a signed test event to the configured receiver now and say what it answered."""
    await authorize(request, "api")
    sender = Sender(request.app[HTTP], request.app[CONFIG].webhook_timeout_s)
    msg_id, attempt = await send_test_event(request.app[CORE], sender)
    return json_response({"id": msg_id, "delivered": attempt.ok, **attempt.public()})
