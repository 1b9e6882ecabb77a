"""A per-process cache kept correct by invalidations published with every write."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis

from service.store.connection import STORE_ERRORS
from service.store.keys import CacheNames

log = structlog.get_logger("cache")
MISS = object()
POLL_S = 0.1
PING_EVERY_S = 0.4
PONG_WITHIN_S = 0.4

# How a store tells this process's cache at once that it changed an entry (a name of
# service.store.keys.CacheNames); other processes learn it from the invalidation channel.
Invalidate = Callable[[str], None]


def forget_nothing(name: str) -> None:
    """The Invalidate of a store used without a cache (CLI commands, tests)."""


class LocalCache:
    """Entries live until invalidated or their TTL passes; nothing is served while deaf.

    `epoch` grows with every invalidation: a value read from Redis is stored only if no
    invalidation arrived since the read started, so a late write never resurrects old data.
    """

    def __init__(self, ttl_s: float, max_entries: int = 100_000) -> None:
        self.ttl_s, self.max_entries = ttl_s, max_entries
        self._next_sweep = 0.0
        self.entries: dict[str, tuple[float, Any]] = {}
        self.epoch = 0
        self.live = False
        self.hits = self.misses = 0  # lookups, for the metrics

    def get(self, key: str) -> Any:
        """Return the cached value or MISS."""
        entry = self.entries.get(key) if self.live else None
        if entry is None or entry[0] < time.monotonic():
            self.misses += 1
            return MISS
        self.hits += 1
        return entry[1]

    def put(self, key: str, value: Any, epoch: int) -> None:
        """Store `value` read from Redis when the epoch has not moved since the read began."""
        if self.live and epoch == self.epoch and self.ttl_s > 0:
            now = time.monotonic()
            if now >= self._next_sweep or len(self.entries) >= self.max_entries:
                self._evict(now)
            self.entries[key] = (now + self.ttl_s, value)

    def _evict(self, now: float) -> None:
        """Drop expired entries (at most once per TTL); if still full, drop all (bounded memory)."""
        self._next_sweep = now + self.ttl_s
        self.entries = {k: e for k, e in self.entries.items() if e[0] >= now}
        if len(self.entries) >= self.max_entries:
            self.entries.clear()

    def invalidate(self, key: str) -> None:
        """Forget one key."""
        self.epoch += 1
        self.entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self.epoch += 1
        self.entries.clear()

    async def listen(self, redis: Redis, channel: str, retry_s: float = 0.5) -> None:
        """Follow the invalidation channel forever; flush whole on every (re)subscribe.

        `redis` must not retry on its own: a lost connection has to surface here, so that
        the cache goes deaf (serves nothing) until it has subscribed again.
        """
        while True:
            try:
                async with redis.pubsub(ignore_subscribe_messages=False) as pubsub:
                    try:
                        await pubsub.subscribe(channel)
                        await self._consume(pubsub)
                    finally:
                        self.live = False
                        self.clear()
            except STORE_ERRORS as exc:
                log.warning("cache_deaf", error=type(exc).__name__)
                await asyncio.sleep(retry_s)

    async def _consume(self, pubsub: Any) -> None:
        """Apply messages; ping when idle and give up when a pong does not come back in time."""
        pong_due: float | None = None
        next_ping = time.monotonic() + PING_EVERY_S
        while True:
            message = await pubsub.get_message(timeout=POLL_S)
            now = time.monotonic()
            if message is None:
                if pong_due is not None and now > pong_due:
                    raise ConnectionError("the invalidation channel stopped answering")
                if pong_due is None and now >= next_ping:
                    await pubsub.ping()
                    pong_due, next_ping = now + PONG_WITHIN_S, now + PING_EVERY_S
                continue
            if pong_due is not None:  # any reply proves the connection alive
                pong_due = None  # (redis-py mangles the PONG reply itself)
            kind = message["type"]
            if kind == "subscribe":
                self.clear()
                self.live = True
            elif kind == "message":
                data = message["data"]
                if data == CacheNames.ALL:
                    self.clear()
                else:
                    self.invalidate(data)
