"""How a delivery is framed under the current settings: Standard Webhooks or EmailEngine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis

from service.crypto.cipher import Cipher
from service.store.keys import Keys
from service.webhooks.emailengine import ee_request
from service.webhooks.headers import WebhookHeaders
from service.webhooks.secrets import WebhookSecrets
from service.webhooks.sender import standard_headers
from service.webhooks.service_secret import ServiceSecret

# (msg id, the stored event JSON, attempts made before this one, now) -> (body, headers)
Framed = tuple[bytes, dict[str, str]]
Frame = Callable[[str, str, int, int], Framed]


async def framing(
    redis: Redis, keys: Keys, cipher: Cipher, service_url: str, settings: dict[str, Any], now: int
) -> Frame | None:
    """The framing of deliveries now; None when they cannot be signed (no webhook secret).

    The emailengine format signs with serviceSecret, generated when none is set (as
    EmailEngine does), and names `service_url` (the public base URL) in every body; the
    standard one signs with the active webhook secrets.
    """
    custom = await WebhookHeaders(redis, keys, cipher).values()
    if settings.get("webhookFormat") == "emailengine":
        secret, _ = await ServiceSecret(redis, keys, cipher).ensure()

        def emailengine(
            msg_id: str, payload: str, made: int, now: int
        ) -> tuple[bytes, dict[str, str]]:
            return ee_request(payload, service_url, secret, custom, made, now)

        return emailengine
    signing = await WebhookSecrets(redis, keys, cipher).active(now)
    if not signing:
        return None

    def standard(msg_id: str, payload: str, made: int, at_ms: int) -> Framed:
        body = payload.encode()
        return body, standard_headers(custom, signing, msg_id, body, at_ms)

    return standard
