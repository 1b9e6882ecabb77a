"""The service through Redis Sentinel: tokens, cache invalidation, worker refresh, failover."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.clock import ManualClock, SystemClock
from service.config import Config, ConfigError, sentinel_parts
from service.store.cache import MISS
from service.store.connection import create_redis, is_cluster, is_sentinel
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.polling import eventually
from tests.support.processes import running
from tests.support.sentinel import RedisSentinelProcesses
from tests.test_cluster import import_accounts
from workers.worker import Worker

Client = TestClient[web.Request, web.Application]


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisSentinelProcesses]:
    """A master, a replica and one sentinel on free loopback ports."""
    with running(RedisSentinelProcesses(Path(tmp_path_factory.mktemp("sentinel")))) as processes:
        yield processes


@pytest.fixture
async def sentinel_config(config: Config, sentinels: RedisSentinelProcesses) -> Config:
    """The service's configuration through the sentinel, the master emptied before each test."""
    cfg = dataclasses.replace(config, redis_url=sentinels.url)
    store = create_redis(cfg)
    await store.flushall()
    await store.aclose()
    return cfg


async def on_port(port: int, key: str) -> bool:
    """True when the server on `port` itself holds `key`."""
    async with Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
        return bool(await node.exists(key))


async def test_tokens_and_worker_refresh_through_sentinel(
    make_client: Callable[..., Awaitable[Client]],
    sentinel_config: Config,
    sentinels: RedisSentinelProcesses,
    idp: Idp,
    tmp_path: Path,
) -> None:
    """An import lands on the master the sentinel names; the token is served; a worker refreshes."""
    assert is_sentinel(sentinel_config) and not is_cluster(sentinel_config)
    web_client = await make_client(sentinel_config)
    core = web_client.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    await core.settings.update({"enableOAuthTokensApi": True})
    ids = await import_accounts(web_client, admin, idp)
    for account in ids:
        assert await on_port(sentinels.master(), core.keys.account(account))
    resp = await web_client.get(f"/v1/account/{ids[0]}/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["account"] == ids[0]

    worker_config = dataclasses.replace(
        sentinel_config, poll_ms=50, app_rate_per_s=1000, worker_health_file=str(tmp_path / "h")
    )
    clock = ManualClock(SystemClock().now_ms())
    store = create_redis(worker_config)
    try:
        async with aiohttp.ClientSession() as http:
            worker = Worker(worker_config, store, http, clock)
            before = {a: (await worker.core.accounts.require(a)).refreshed_at_ms for a in ids}
            await worker.run(burst=True)  # nothing due yet
            assert idp.stats()["refresh_requests"] == 0
            clock.advance(6 * 60_000)
            await worker.run(burst=True)
            assert idp.stats()["refresh_requests"] == len(ids)
            after = {a: (await worker.core.accounts.require(a)).refreshed_at_ms for a in ids}

            async def listening() -> bool:  # the worker's own listener (retries=0)
                return worker.core.cache.live

            running = asyncio.create_task(worker.run())
            await eventually(listening, 5.0, "the worker's cache subscribes through the sentinel")
            worker.stop()
            await asyncio.wait_for(running, 10.0)
    finally:
        await store.aclose()
    assert all(after[a] != before[a] for a in ids)


async def test_cache_invalidation_through_sentinel(
    make_client: Callable[..., Awaitable[Client]], sentinel_config: Config, idp: Idp
) -> None:
    """A delete through one web app is forgotten by another's cache within a second."""
    first, second = await make_client(sentinel_config), await make_client(sentinel_config)
    core_a, core_b = first.app[CORE], second.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core_a, '*')}"}
    await core_a.settings.update({"enableOAuthTokensApi": True})
    ids = await import_accounts(first, admin, idp)

    async def live() -> bool:
        return core_a.cache.live and core_b.cache.live

    await eventually(live, 5.0, "both web apps subscribe")
    resp = await first.get(f"/v1/account/{ids[0]}/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    assert core_a.cache.get(f"acct:{ids[0]}") is not MISS
    assert (await second.delete(f"/v1/account/{ids[0]}", headers=admin)).status == 200

    async def forgotten() -> bool:
        return core_a.cache.get(f"acct:{ids[0]}") is MISS

    await eventually(forgotten, 1.0, "the first app forgets the deleted account")
    resp = await first.get(f"/v1/account/{ids[0]}/oauth-token", headers=admin)
    assert resp.status == 404, await resp.text()


async def test_service_follows_a_failover(
    make_client: Callable[..., Awaitable[Client]],
    sentinel_config: Config,
    sentinels: RedisSentinelProcesses,
    idp: Idp,
) -> None:
    """After SENTINEL FAILOVER the same clients serve tokens, write, and invalidate again."""
    first, second = await make_client(sentinel_config), await make_client(sentinel_config)
    core_a, core_b = first.app[CORE], second.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core_a, '*')}"}
    await core_a.settings.update({"enableOAuthTokensApi": True})
    ids = await import_accounts(first, admin, idp)
    resp = await first.get(f"/v1/account/{ids[0]}/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    old = sentinels.master()

    new = sentinels.failover()
    assert new != old and await on_port(new, core_a.keys.account(ids[1]))

    async def serves() -> bool:
        resp = await first.get(f"/v1/account/{ids[1]}/oauth-token", headers=admin)
        return resp.status == 200

    await eventually(serves, 10.0, "the first app serves a token from the new master")

    async def live() -> bool:
        return core_a.cache.live and core_b.cache.live

    await eventually(live, 10.0, "both web apps subscribe again (on the new master)")
    resp = await first.get(f"/v1/account/{ids[1]}/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    assert core_a.cache.get(f"acct:{ids[1]}") is not MISS

    async def deleted() -> bool:
        resp = await second.delete(f"/v1/account/{ids[1]}", headers=admin)
        return resp.status == 200

    await eventually(deleted, 10.0, "the second app writes to the new master")
    assert not await on_port(new, core_a.keys.account(ids[1]))

    async def forgotten() -> bool:
        return core_a.cache.get(f"acct:{ids[1]}") is MISS

    await eventually(forgotten, 1.0, "the first app forgets the account deleted after failover")


def test_sentinel_urls_are_validated() -> None:
    """The documented form parses; anything else stops start-up with a message naming REDIS_URL."""
    env = {"TOKENBROKER_SECRET": base64.b64encode(bytes(32)).decode()}
    url = "rediss+sentinel://:p%40ss@s1:26379,[::1]:26380/my-master/3"
    parts = sentinel_parts(url)
    assert parts is not None
    assert parts.sentinels == (("s1", 26379), ("::1", 26380))
    assert (parts.service_name, parts.db) == ("my-master", 3)
    assert parts.password == "p@ss" and parts.ssl
    assert Config.from_env({**env, "REDIS_URL": url}).redis_url == url
    assert sentinel_parts("redis+sentinel://s1:26379/tb") is not None
    for bad in (
        "redis+sentinel://s1:26379",
        "redis+sentinel://s1:26379/",
        "redis+sentinel://s1/tb",
        "redis+sentinel://s1:26379,s2/tb",
        "redis+sentinel://s1:26379/tb/x",
        "redis+sentinel://s1:26379/tb/0/1",
    ):
        with pytest.raises(ConfigError, match="REDIS_URL must look like redis\\+sentinel://"):
            Config.from_env({**env, "REDIS_URL": bad})
    with pytest.raises(ConfigError, match="TOKENBROKER_REDIS_MODE"):
        Config.from_env({**env, "REDIS_URL": url, "TOKENBROKER_REDIS_MODE": "cluster"})
