"""The webhook signing secret: encrypted at rest, shown once, rotated with an overlap."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from service.crypto.cipher import Cipher
from service.store.keys import Keys
from service.webhooks.signing import new_secret

CURRENT, PREVIOUS, PREVIOUS_UNTIL = "webhookSecret", "webhookSecretPrevious", "webhookSecretUntil"
AAD = "settings:webhookSecret"
OVERLAP_MS = 24 * 3_600_000  # receivers get a day to switch to the new secret


class WebhookSecrets:
    """Stores the current secret and, for a day after a rotation, the previous one."""

    def __init__(self, redis: Redis, keys: Keys, cipher: Cipher) -> None:
        self.redis, self.keys, self.cipher = redis, keys, cipher

    async def rotate(self, now_ms: int) -> str:
        """Make a new secret (returned this once); the old one stays valid for a day."""
        secret = new_secret()
        sealed = self.cipher.encrypt(secret, AAD)

        async def swap(pipe: Pipeline) -> None:
            old = await pipe.hget(self.keys.settings, CURRENT)
            pipe.multi()  # type: ignore[no-untyped-call]  # untyped in redis-py
            if old:
                pipe.hset(self.keys.settings, PREVIOUS, old)
                pipe.hset(self.keys.settings, PREVIOUS_UNTIL, str(now_ms + OVERLAP_MS))
            pipe.hset(self.keys.settings, CURRENT, sealed)

        await self.redis.transaction(swap, self.keys.settings)
        return secret

    async def active(self, now_ms: int) -> list[str]:
        """The secrets to sign with: the current one, and the previous during the overlap."""
        current, previous, until = await self.redis.hmget(
            self.keys.settings, [CURRENT, PREVIOUS, PREVIOUS_UNTIL]
        )
        found = [self.cipher.decrypt(str(current), AAD)] if current else []
        if previous and until and int(until) > now_ms:
            found.append(self.cipher.decrypt(str(previous), AAD))
        return found
