"""The whole flow on a 3-master Redis Cluster with 8 partitions: spread over every master."""

from __future__ import annotations

import base64
import dataclasses
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.audit import AuditTrail
from service.audit_query import AuditFilter, AuditReader
from service.clock import ManualClock, SystemClock, iso
from service.config import Config, ConfigError
from service.crypto.cipher import Cipher
from service.crypto.rotation import KeyRotation
from service.sealed_records import SealedRecords, account_ids
from service.store.cache import MISS
from service.store.connection import create_redis, is_cluster
from service.store.keys import Keys
from service.store.scripts import Scripts
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.cluster import RedisClusterProcesses
from tests.support.idp import Idp
from tests.support.polling import eventually
from tests.support.processes import running
from tests.support.receiver import Receiver
from workers.worker import Worker

Client = TestClient[web.Request, web.Application]
PARTITIONS = 8
PER_PARTITION = 2
SCOPE = "openid email profile offline_access mail.read"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """Three cluster-enabled redis-servers on free loopback ports, slots assigned."""
    with running(RedisClusterProcesses(Path(tmp_path_factory.mktemp("cluster")))) as nodes:
        yield nodes


@pytest.fixture
async def cluster_config(config: Config, cluster: RedisClusterProcesses) -> Config:
    """The service's configuration on the cluster (8 partitions), emptied before each test."""
    cfg = dataclasses.replace(config, redis_url=cluster.url, schedule_partitions=PARTITIONS)
    store = create_redis(cfg)
    await store.flushall()  # every master
    await store.aclose()
    return cfg


def spread_ids(keys: Keys) -> list[str]:
    """Account ids, PER_PARTITION in every partition."""
    found: dict[int, list[str]] = {p: [] for p in range(keys.partitions)}
    n = 0
    while any(len(ids) < PER_PARTITION for ids in found.values()):
        account = f"acct{n}"
        if len(found[keys.partition_of(account)]) < PER_PARTITION:
            found[keys.partition_of(account)].append(account)
        n += 1
    return sorted(a for ids in found.values() for a in ids)


def owners(cluster: RedisClusterProcesses, keys: Keys, ids: list[str]) -> dict[str, int]:
    """Account id -> port of the master owning its partition's hash tag."""
    return {a: cluster.owner(keys.schedule(keys.partition_of(a))) for a in ids}


async def on_node(port: int, key: str) -> bool:
    """True when the node itself holds `key` (a node not owning its slot answers MOVED)."""
    async with Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
        return bool(await node.exists(key))


async def import_accounts(web_client: Client, headers: dict[str, str], idp: Idp) -> list[str]:
    """An app at the test provider and accounts in every partition, due within 10 minutes."""
    body = {
        "id": "idp",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "additionalScopes": ["mail.read"],
    }
    resp = await web_client.post("/v1/oauth2", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    ids = spread_ids(web_client.app[CORE].keys)
    for account in ids:
        minted = idp.mint(f"{account}-user", SCOPE)
        oauth2 = {
            "provider": "idp",
            "auth": {"user": f"{account}@example.test"},
            "refreshToken": minted["refresh_token"],
            "accessToken": minted["access_token"],
            "expires": iso(SystemClock().now_ms() + 600_000),
        }
        resp = await web_client.post(
            "/v1/account", json={"account": account, "oauth2": oauth2}, headers=headers
        )
        assert resp.status == 200, await resp.text()
    return ids


async def test_whole_flow_spreads_over_every_master(
    make_client: Callable[..., Awaitable[Client]],
    cluster_config: Config,
    cluster: RedisClusterProcesses,
    idp: Idp,
    receiver: Receiver,
    tmp_path: Path,
) -> None:
    """Import, fetch a token, refresh in a worker and deliver webhooks: on all 3 masters."""
    web_client = await make_client(cluster_config)
    core = web_client.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    await core.settings.update({"enableOAuthTokensApi": True})
    hooks = {"webhooks": receiver.url, "webhooksEnabled": True}
    assert (await web_client.put("/v1/settings", json=hooks, headers=admin)).status == 200
    assert (await web_client.post("/v1/settings/webhook-secret", headers=admin)).status == 200
    ids = await import_accounts(web_client, admin, idp)
    where = owners(cluster, core.keys, ids)
    assert set(where.values()) == set(cluster.ports)  # 8 partitions cover every master
    for account, port in where.items():
        assert await on_node(port, core.keys.account(account))

    resp = await web_client.get(f"/v1/account/{ids[0]}/oauth-token", headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await resp.json())["account"] == ids[0]

    worker_config = dataclasses.replace(
        cluster_config, poll_ms=50, app_rate_per_s=1000, worker_health_file=str(tmp_path / "h")
    )
    clock = ManualClock(SystemClock().now_ms())
    store = create_redis(worker_config)
    try:
        async with aiohttp.ClientSession() as http:
            worker = Worker(worker_config, store, http, clock)
            before = {a: (await worker.core.accounts.require(a)).refreshed_at_ms for a in ids}
            await worker.run(burst=True)  # not due yet; delivers the accountAdded events
            assert idp.stats()["refresh_requests"] == 0
            clock.advance(6 * 60_000)
            await worker.run(burst=True)
            assert idp.stats()["refresh_requests"] == len(ids)
            refreshed = [
                a
                for a in ids
                if (await worker.core.accounts.require(a)).refreshed_at_ms != before[a]
            ]
    finally:
        await store.aclose()
    assert sorted(refreshed) == ids
    assert {where[a] for a in refreshed} == set(cluster.ports)

    added = {e["account"] for e in receiver.events() if e["event"] == "accountAdded"}
    assert added == set(ids)  # each partition's stream (on its own master) was delivered
    assert all("webhook-signature" in headers for headers, _ in receiver.got)


async def test_cache_invalidations_cross_web_processes(
    make_client: Callable[..., Awaitable[Client]],
    cluster_config: Config,
    cluster: RedisClusterProcesses,
    idp: Idp,
) -> None:
    """Writes through one web app (scripts on every master, MULTI/EXEC) reach another's cache."""
    first, second = await make_client(cluster_config), await make_client(cluster_config)
    core_a, core_b = first.app[CORE], second.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core_a, '*')}"}
    await core_a.settings.update({"enableOAuthTokensApi": True})
    ids = await import_accounts(first, admin, idp)
    where = owners(cluster, core_a.keys, ids)
    one_per_master = [next(a for a in ids if where[a] == port) for port in cluster.ports]

    async def live() -> bool:
        return core_a.cache.live and core_b.cache.live

    await eventually(live, 5.0, "both web apps subscribe")
    for account in one_per_master:
        resp = await first.get(f"/v1/account/{account}/oauth-token", headers=admin)
        assert resp.status == 200, await resp.text()
        assert core_a.cache.get(f"acct:{account}") is not MISS

    for account in one_per_master:  # account_delete.lua publishes on the account's master
        assert (await second.delete(f"/v1/account/{account}", headers=admin)).status == 200

    async def forgotten() -> bool:
        return all(core_a.cache.get(f"acct:{a}") is MISS for a in one_per_master)

    await eventually(forgotten, 2.0, "the first app forgets every deleted account")
    for account in one_per_master:
        resp = await first.get(f"/v1/account/{account}/oauth-token", headers=admin)
        assert resp.status == 404, await resp.text()

    assert core_a.cache.get("settings") is not MISS  # MULTI/EXEC with PUBLISH ({g} slot)
    off = {"enableOAuthTokensApi": False}
    assert (await second.put("/v1/settings", json=off, headers=admin)).status == 200

    async def settings_forgotten() -> bool:
        return core_a.cache.get("settings") is MISS

    await eventually(settings_forgotten, 2.0, "the first app forgets the settings")
    left = next(a for a in ids if a not in one_per_master)
    resp = await first.get(f"/v1/account/{left}/oauth-token", headers=admin)
    assert resp.status != 200


async def test_scan_and_key_rotation_reach_every_master(
    make_client: Callable[..., Awaitable[Client]], cluster_config: Config, idp: Idp
) -> None:
    """SCAN finds the accounts of every master; rotation re-encrypts them all (cluster pipeline)."""
    web_client = await make_client(cluster_config)
    core = web_client.app[CORE]
    admin = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    ids = await import_accounts(web_client, admin, idp)
    found = [a async for batch in account_ids(core.redis, core.keys, 5) for a in batch]
    assert sorted(set(found)) == ids
    new = Cipher(bytes(range(1, 33)), (cluster_config.secret_key,))
    rotation = KeyRotation(core.redis, core.scripts, new, SealedRecords(core.redis, core.keys))
    stats = await rotation.rotate(batch=5)
    assert stats.complete and stats.rotated == 2 * len(ids) + 1  # tokens, and the app's secret
    assert await rotation.status() == Counter({new.current_id: 2 * len(ids) + 1})


async def test_cluster_mode_switch_with_a_redis_url(
    cluster_config: Config, cluster: RedisClusterProcesses
) -> None:
    """TOKENBROKER_REDIS_MODE=cluster turns a redis:// URL of one node into a cluster client."""
    env = {
        "REDIS_URL": f"redis://127.0.0.1:{cluster.ports[0]}/0",
        "TOKENBROKER_SECRET": base64.b64encode(bytes(32)).decode(),
        "TOKENBROKER_REDIS_MODE": "cluster",
    }
    config = Config.from_env(env)
    assert is_cluster(config) and is_cluster(cluster_config)
    store = create_redis(config)
    try:
        keys = Keys("tb", PARTITIONS)
        for part in range(PARTITIONS):  # slots on every master, through one startup node
            await store.set(keys.schedule(part), str(part))
        assert [await store.get(keys.schedule(p)) for p in range(PARTITIONS)] == [
            str(p) for p in range(PARTITIONS)
        ]
    finally:
        await store.aclose()
    with pytest.raises(ConfigError, match="host:port"):
        Config.from_env({**env, "REDIS_URL": "redis+cluster://127.0.0.1:1,nohost"})
    env["REDIS_URL"] = cluster.url
    assert is_cluster(Config.from_env({**env, "TOKENBROKER_REDIS_MODE": "single"}))


async def test_audit_partitions_spread_and_read_back_on_a_cluster(
    cluster_config: Config, cluster: RedisClusterProcesses
) -> None:
    """One audit flush writes every partition (own hash tags) and the reader merges them back."""
    cfg = dataclasses.replace(cluster_config, audit_partitions=8)
    store = create_redis(cfg)
    try:
        keys = Keys(cfg.redis_prefix)
        trail = AuditTrail(store, keys, Scripts(store), SystemClock(), cfg)
        for n in range(80):
            trail.token_answer(
                account=f"acct{n}",
                api_token=("t", None),
                client="192.0.2.1",
                request_id=f"r{n}",
                source="cache",
            )
        assert await trail.flush() is True
        masters = {cluster.owner(keys.audit(p)) for p in range(8)}
        assert len(masters) > 1  # the partitions' tags land on several masters
        page = await AuditReader(store, keys, 8).page(AuditFilter(), 100, None, 0)
        assert sorted(r["requestId"] for r in page.records) == sorted(f"r{n}" for n in range(80))
    finally:
        await store.aclose()
