"""The webhook test event: one signed `webhookTest` sent to the configured receiver now."""

from __future__ import annotations

import secrets

import orjson

from service import errors
from service.clock import iso
from service.core import Core
from service.webhooks.framing import framing
from service.webhooks.sender import Attempt, Sender

MSG_ID = "msg_"


async def send_test_event(core: Core, sender: Sender) -> tuple[str, Attempt]:
    """Send a signed test event; return (its id, the attempt). Needs a URL and a secret."""
    settings = await core.settings.all()
    now = core.clock.now_ms()
    where = (core.redis, core.keys, core.cipher, core.config.base_url)
    frame = await framing(*where, settings, now) if settings["webhooks"] else None
    if frame is None:
        raise errors.WebhookNotConfigured(
            "set a webhook URL and create a secret (POST /v1/settings/webhook-secret) first"
        )
    msg_id = f"{MSG_ID}{secrets.token_urlsafe(18)}"
    payload = orjson.dumps(
        {
            "id": msg_id,
            "event": "webhookTest",
            "date": iso(now),
            "account": None,
            "app": None,
            "data": {},
        }
    )
    body, headers = frame(msg_id, payload.decode(), 0, now)
    attempt = await sender.post(settings["webhooks"], headers, msg_id, body, now)
    return msg_id, attempt
