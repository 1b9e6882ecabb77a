"""LocalCache: liveness, TTL, the epoch rule, and following invalidations on a real Redis."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

from redis.asyncio import Redis

from service.config import Config
from service.store.cache import MISS, LocalCache
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from tests.support.polling import eventually

CHANNEL = "tb:invalidate"


def live_cache(ttl_s: float = 60.0) -> LocalCache:
    """A cache that believes it is subscribed (what listen() does on 'subscribe')."""
    cache = LocalCache(ttl_s)
    cache.live = True
    return cache


@contextlib.asynccontextmanager
async def listening(
    cache: LocalCache, redis: Redis, retry_s: float = 0.5
) -> AsyncIterator[asyncio.Task[None]]:
    """Run cache.listen() on `redis` for the block, cancelling it afterwards."""
    task = asyncio.create_task(cache.listen(redis, CHANNEL, retry_s=retry_s))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def test_miss_while_not_live() -> None:
    """A cache that is not subscribed neither stores nor serves anything."""
    cache = LocalCache(60.0)
    cache.put("k", "v", cache.epoch)
    assert cache.get("k") is MISS
    assert cache.entries == {}
    cache.live = True
    cache.put("k", "v", cache.epoch)
    assert cache.get("k") == "v"
    cache.live = False
    assert cache.get("k") is MISS


def test_lookups_counted_as_hits_and_misses() -> None:
    """Each get() is one hit or one miss: absent, deaf (not live) and expired are misses."""
    cache = LocalCache(60.0)
    assert cache.get("k") is MISS  # deaf
    cache.live = True
    assert cache.get("k") is MISS  # absent
    cache.put("k", None, cache.epoch)
    assert cache.get("k") is None and cache.get("k") is None
    cache.entries["old"] = (time.monotonic() - 1, "v")
    assert cache.get("old") is MISS  # expired
    assert (cache.hits, cache.misses) == (2, 3)


def test_none_is_a_cached_value() -> None:
    """A stored None (e.g. 'no such API token') is a hit, distinct from MISS."""
    cache = live_cache()
    cache.put("token:abc", None, cache.epoch)
    assert cache.get("token:abc") is None


async def test_ttl_expiry() -> None:
    """An entry is served until its TTL passes, then it is a MISS."""
    cache = live_cache(ttl_s=0.05)
    start = time.monotonic()
    cache.put("k", "v", cache.epoch)
    assert cache.get("k") == "v"
    await eventually(lambda: cache.get("k") is MISS, 2.0, "the entry expires")
    assert time.monotonic() - start >= 0.05


def test_ttl_zero_disables_caching() -> None:
    """With ttl 0 nothing is ever stored."""
    cache = live_cache(ttl_s=0)
    cache.put("k", "v", cache.epoch)
    assert cache.get("k") is MISS
    assert cache.entries == {}


def test_epoch_rule_drops_value_read_before_invalidation() -> None:
    """A value read before any invalidation arrived is not stored; a later read is."""
    cache = live_cache()
    epoch = cache.epoch  # the read from Redis starts here ...
    cache.invalidate("acct:other")  # ... an invalidation (any key) arrives meanwhile ...
    cache.put("acct:x", "old", epoch)  # ... so the possibly stale value is dropped
    assert cache.get("acct:x") is MISS
    epoch = cache.epoch
    cache.clear()
    cache.put("acct:x", "old", epoch)
    assert cache.get("acct:x") is MISS
    epoch = cache.epoch
    cache.put("acct:x", "new", epoch)
    assert cache.get("acct:x") == "new"


def test_invalidate_forgets_only_that_key() -> None:
    """invalidate() forgets one key and leaves the others served."""
    cache = live_cache()
    cache.put("a", 1, cache.epoch)
    cache.put("b", 2, cache.epoch)
    cache.invalidate("a")
    assert cache.get("a") is MISS
    assert cache.get("b") == 2


def test_clear_forgets_everything() -> None:
    """clear() empties the cache and moves the epoch."""
    cache = live_cache()
    cache.put("a", 1, cache.epoch)
    cache.put("b", 2, cache.epoch)
    before = cache.epoch
    cache.clear()
    assert cache.get("a") is MISS and cache.get("b") is MISS
    assert cache.entries == {} and cache.epoch > before


async def test_expired_entries_do_not_accumulate() -> None:
    """Expired entries are reclaimed: distinct keys (bogus bearer tokens) cannot grow it forever."""
    cache = live_cache(ttl_s=0.01)
    batch = 20_000
    for i in range(batch):  # every request with a new random bearer caches a 'no such token'
        cache.put(f"token:{i:064x}", None, cache.epoch)
    await eventually(lambda: cache.get(f"token:{batch - 1:064x}") is MISS, 2.0, "the batch expires")
    for i in range(batch, 2 * batch):
        cache.put(f"token:{i:064x}", None, cache.epoch)
    held = len(cache.entries)
    assert held <= batch, f"{held} entries held after {batch} of them expired: never evicted"


async def test_listen_follows_invalidations(redis: Redis) -> None:
    """listen() goes live on subscribe, forgets a published key, flushes on 'all', stops deaf."""
    cache = LocalCache(60.0)
    async with listening(cache, redis) as task:
        await eventually(lambda: cache.live, 5.0, "the cache subscribes")
        cache.put("acct:a", "A", cache.epoch)
        cache.put("acct:b", "B", cache.epoch)
        await redis.publish(CHANNEL, "acct:a")
        await eventually(lambda: cache.get("acct:a") is MISS, 1.0, "acct:a is invalidated")
        assert cache.get("acct:b") == "B"
        await redis.publish(CHANNEL, "all")
        await eventually(lambda: cache.get("acct:b") is MISS, 1.0, "'all' flushes the cache")
        cache.put("acct:c", "C", cache.epoch)
        cache.put("acct:marker", "M", cache.epoch)
        await redis.publish("tb:other-channel", "acct:c")  # not ours: ignored
        await redis.publish(CHANNEL, "acct:marker")  # once this arrived, so had the other
        await eventually(lambda: cache.get("acct:marker") is MISS, 1.0, "the marker arrives")
        assert cache.get("acct:c") == "C"
    assert task.done() and not cache.live


async def test_listen_survives_redis_restart(tmp_path: Path) -> None:
    """Redis going away makes the cache deaf and empty; it re-subscribes when Redis is back."""
    server = RedisProcess(tmp_path / "redis")
    server.start()
    client = create_redis(Config(redis_url=server.url, secret_key=bytes(32), redis_timeout_s=0.2))
    cache = LocalCache(60.0)
    try:
        async with listening(cache, client, retry_s=0.05):
            await eventually(lambda: cache.live, 5.0, "the cache subscribes")
            cache.put("acct:a", "A", cache.epoch)
            server.stop()
            await eventually(lambda: not cache.live, 2.0, "the cache notices Redis is gone")
            assert cache.get("acct:a") is MISS and cache.entries == {}
            epoch = cache.epoch
            cache.put("acct:a", "A", epoch)  # a read that raced the outage is not stored
            assert cache.entries == {}
            server.start()
            await eventually(lambda: cache.live, 5.0, "the cache re-subscribes")
            assert cache.get("acct:a") is MISS
            cache.put("acct:a", "A2", cache.epoch)
            assert cache.get("acct:a") == "A2"
            await client.publish(CHANNEL, "acct:a")
            await eventually(lambda: cache.get("acct:a") is MISS, 1.0, "invalidations flow again")
    finally:
        await client.aclose()
        server.stop()


async def ping_calls(client: Redis) -> int:
    """How many PING commands the server has run (its command statistics)."""
    stats = await client.info("commandstats")
    return int(stats.get("cmdstat_ping", {}).get("calls", 0))


async def test_idle_subscription_stays_live(redis_server: RedisProcess) -> None:
    """An idle, healthy subscription answers its pings and is never dropped."""
    cache = LocalCache(ttl_s=5)
    client = create_redis(Config(redis_url=redis_server.url, secret_key=bytes(32)), retries=0)
    task = asyncio.create_task(cache.listen(client, "tb:test-idle"))
    try:
        await eventually(lambda: cache.live, 5.0, "the cache subscribes")
        cache.put("acct:a", "A", cache.epoch)
        epoch, pings = cache.epoch, await ping_calls(client)

        async def pinged_thrice() -> bool:
            return await ping_calls(client) >= pings + 3

        await eventually(pinged_thrice, 5.0, "three pings answered while idle", every_s=0.05)
        assert cache.live and cache.epoch == epoch  # never flushed by a re-subscribe
        assert cache.get("acct:a") == "A"
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()
