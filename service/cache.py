"""A per-process cache kept correct by invalidations published with every write."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import structlog
from redis.asyncio import Redis

from service.redisconn import STORE_ERRORS

log = structlog.get_logger("cache")
MISS = object()


class LocalCache:
    """Entries live until invalidated or their TTL passes; nothing is served while deaf.

    `epoch` grows with every invalidation: a value read from Redis is stored only if no
    invalidation arrived since the read started, so a late write never resurrects old data.
    """

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.entries: dict[str, tuple[float, Any]] = {}
        self.epoch = 0
        self.live = False

    def get(self, key: str) -> Any:
        """Return the cached value or MISS."""
        if not self.live:
            return MISS
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return MISS
        return entry[1]

    def put(self, key: str, value: Any, epoch: int) -> None:
        """Store `value` read from Redis when the epoch has not moved since the read began."""
        if self.live and epoch == self.epoch and self.ttl_s > 0:
            self.entries[key] = (time.monotonic() + self.ttl_s, value)

    def invalidate(self, key: str) -> None:
        """Forget one key."""
        self.epoch += 1
        self.entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self.epoch += 1
        self.entries.clear()

    async def listen(self, redis: Redis, channel: str, retry_s: float = 0.5) -> None:
        """Follow the invalidation channel forever; flush whole on every (re)subscribe."""
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=False) as pubsub:
                    await pubsub.subscribe(channel)
                    await self._consume(pubsub)
            except asyncio.CancelledError:
                self.live = False
                raise
            except STORE_ERRORS as exc:
                if self.live:
                    log.warning("cache_deaf", error=type(exc).__name__)
                self.live = False
                self.clear()
                await asyncio.sleep(retry_s)

    async def _consume(self, pubsub: Any) -> None:
        while True:
            message = await pubsub.get_message(timeout=5.0)
            if message is None:
                await pubsub.ping()
                continue
            if message["type"] == "subscribe":
                self.clear()
                self.live = True
            elif message["type"] == "message":
                data = message["data"]
                if data == "all":
                    self.clear()
                else:
                    self.invalidate(data)
