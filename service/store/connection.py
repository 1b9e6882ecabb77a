"""Creates redis.asyncio clients with explicit timeouts and retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import SENTINEL_SCHEMES, Config, sentinel_parts
from service.store.cluster import cluster_client

STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def is_cluster(config: Config) -> bool:
    """True when REDIS_URL names a Redis Cluster (redis+cluster:// or TOKENBROKER_REDIS_MODE)."""
    return config.redis_mode == "cluster" or "+cluster://" in config.redis_url


def is_sentinel(config: Config) -> bool:
    """True when REDIS_URL names a master through Redis Sentinel (redis+sentinel://)."""
    return urlsplit(config.redis_url).scheme in SENTINEL_SCHEMES


class SentinelRedis(Redis):
    """A client of the master Sentinel names now; closing it closes its sentinel clients too."""

    sentinels: Sentinel | None = None

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        """Close the master's pool and the connections to the sentinels."""
        await super().aclose(close_connection_pool)
        if self.sentinels is not None:
            await self.sentinels.aclose()


def create_redis(config: Config, *, retries: int = 1) -> Redis:
    """Return a client for REDIS_URL that fails fast instead of retrying for seconds.

    With retries=0 the client never reconnects behind the caller's back (pub/sub listeners).
    A cluster client is returned typed as Redis: the stores use only commands that
    RedisCluster routes by key (every script and MULTI/EXEC touches one hash tag).
    A Sentinel URL gives a plain Redis whose connections ask the sentinels for the master
    on every (re)connect, so it follows a failover.
    """
    options: dict[str, Any] = {
        "socket_timeout": config.redis_timeout_s,
        "socket_connect_timeout": config.redis_timeout_s,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), retries)
        if retries
        else Retry(NoBackoff(), 0, supported_errors=()),
        "retry_on_error": [RedisConnectionError, RedisTimeoutError] if retries else [],
        "health_check_interval": 30,
        "decode_responses": True,
        "max_connections": 256,
    }
    if is_cluster(config):
        return cast(Redis, _cluster(config.redis_url, options))
    if is_sentinel(config):
        return _sentinel(config.redis_url, options)
    return Redis.from_url(config.redis_url, **options)


def _cluster(url: str, options: dict[str, Any]) -> RedisCluster:
    """The cluster of redis+cluster://[user:pw@]host:port[,host:port…] (or of a redis:// URL)."""
    scheme, _, rest = url.partition("://")
    userinfo, _, hosts = rest.rpartition("@")
    user, _, password = userinfo.partition(":")
    nodes = []
    for host in hosts.partition("/")[0].split(","):
        parts = urlsplit(f"//{host}")
        nodes.append(ClusterNode(parts.hostname or "127.0.0.1", parts.port or 6379))
    return cluster_client(
        nodes,
        scheme.startswith("rediss"),
        username=unquote(user) or None,
        password=unquote(password) or None,
        **options,
    )


def _sentinel(url: str, options: dict[str, Any]) -> Redis:
    """The master of redis+sentinel://[:password@]host:port[,host:port…]/<service>[/<db>]."""
    parts = sentinel_parts(url)
    if parts is None:  # Config validated it; a hand-built Config may not have
        raise ValueError(f"not a Sentinel URL: {url!r}")
    timeouts = {k: options[k] for k in ("socket_timeout", "socket_connect_timeout")}
    sentinel_options: dict[str, Any] = {**timeouts, "ssl": True} if parts.ssl else dict(timeouts)
    sentinel = Sentinel(  # type: ignore[no-untyped-call]
        list(parts.sentinels), sentinel_kwargs=sentinel_options, **timeouts
    )
    master = sentinel.master_for(
        parts.service_name,
        redis_class=SentinelRedis,
        db=parts.db,
        password=parts.password,
        ssl=parts.ssl,
        **options,
    )
    client = cast(SentinelRedis, master)
    client.sentinels = sentinel
    return client


async def read_hash(redis: Redis, key: str) -> dict[str, str]:
    """HGETALL with the str types a client with decode_responses=True returns."""
    return cast(dict[str, str], await redis.hgetall(key))


def as_mapping(values: dict[str, str]) -> Mapping[Any, Any]:
    """Pass a str dict where redis-py's typing wants its wider mapping type."""
    return values
