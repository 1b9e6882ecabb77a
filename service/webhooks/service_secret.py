"""serviceSecret, the key of EmailEngine-style signatures: encrypted at rest, write-only.

It lives in the settings hash, sealed; it is shown only in the answer that set or
generated it. Like EmailEngine, a missing one is generated (16 random bytes, hex) with
HSETNX, so two processes racing to create it agree on one.
"""

from __future__ import annotations

from redis.asyncio import Redis

from service.crypto.cipher import Cipher
from service.store.keys import Keys
from service.webhooks.emailengine import new_service_secret

FIELD = "serviceSecret"
AAD = "settings:serviceSecret"


class ServiceSecret:
    """Reads, generates and seals the serviceSecret of the settings hash."""

    def __init__(self, redis: Redis, keys: Keys, cipher: Cipher) -> None:
        self.redis, self.keys, self.cipher = redis, keys, cipher

    async def get(self) -> str | None:
        """The secret, decrypted; None when none is set."""
        sealed = await self.redis.hget(self.keys.settings, FIELD)
        return self.cipher.decrypt(str(sealed), AAD) if sealed else None

    async def exists(self) -> bool:
        """Whether a secret is set (what the API and the page show instead of it)."""
        return bool(await self.redis.hexists(self.keys.settings, FIELD))

    def seal(self, secret: str) -> str:
        """The stored form of a secret (for the settings' one MULTI/EXEC)."""
        return self.cipher.encrypt(secret, AAD)

    async def ensure(self) -> tuple[str, bool]:
        """(the secret, True when it was generated now): one is made when none is set."""
        fresh = new_service_secret()
        if await self.redis.hsetnx(self.keys.settings, FIELD, self.seal(fresh)):
            return fresh, True
        found = await self.get()
        if found is None:  # deleted between the two commands: try once more
            return await self.ensure()
        return found, False
