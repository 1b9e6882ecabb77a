"""Creates redis.asyncio clients with explicit timeouts and retries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from service.config import Config

STORE_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)


def create_redis(config: Config, *, retries: int = 1) -> Redis:
    """Return a client for REDIS_URL that fails fast instead of retrying for seconds.

    With retries=0 the client never reconnects behind the caller's back (pub/sub listeners).
    """
    return Redis.from_url(
        config.redis_url,
        socket_timeout=config.redis_timeout_s,
        socket_connect_timeout=config.redis_timeout_s,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries)
        if retries
        else Retry(NoBackoff(), 0, supported_errors=()),
        retry_on_error=[RedisConnectionError, RedisTimeoutError] if retries else [],
        health_check_interval=30,
        decode_responses=True,
        max_connections=256,
    )


async def read_hash(redis: Redis, key: str) -> dict[str, str]:
    """HGETALL with the str types a client with decode_responses=True returns."""
    return cast(dict[str, str], await redis.hgetall(key))


def as_mapping(values: dict[str, str]) -> Mapping[Any, Any]:
    """Pass a str dict where redis-py's typing wants its wider mapping type."""
    return values
