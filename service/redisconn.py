"""Creates redis.asyncio clients with explicit timeouts and retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast
from urllib.parse import unquote, urlsplit

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import Config
from service.redis_cluster import cluster_client

STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def is_cluster(config: Config) -> bool:
    """True when REDIS_URL names a Redis Cluster (redis+cluster:// or TOKENBROKER_REDIS_MODE)."""
    return config.redis_mode == "cluster" or "+cluster://" in config.redis_url


def create_redis(config: Config, *, retries: int = 1) -> Redis:
    """Return a client for REDIS_URL that fails fast instead of retrying for seconds.

    With retries=0 the client never reconnects behind the caller's back (pub/sub listeners).
    A cluster client is returned typed as Redis: the stores use only commands that
    RedisCluster routes by key (every script and MULTI/EXEC touches one hash tag).
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


async def read_hash(redis: Redis, key: str) -> dict[str, str]:
    """HGETALL with the str types a client with decode_responses=True returns."""
    return cast(dict[str, str], await redis.hgetall(key))


def as_mapping(values: dict[str, str]) -> Mapping[Any, Any]:
    """Pass a str dict where redis-py's typing wants its wider mapping type."""
    return values
