"""A Redis Cluster that changes under load: slots resharded, a master failed over, nothing lost.

Web and worker run as `tokenbroker` processes on a 3-master cluster with one replica each;
token requests, refreshes (rotating refresh tokens) and account imports through the API go on
while `redis-cli --cluster reshard` moves every slot of one master to another and that master
is then failed over to its replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import cast

import pytest
import redis as redis_sync
from redis.asyncio import Redis

from service.clock import iso
from service.config import Config
from service.refresh_lock import take_durably
from service.store.connection import create_redis
from service.store.keys import Keys
from service.store.replicas import Ack, ReplicaWait
from service.store.scripts import Scripts
from service.webhooks.secrets import WebhookSecrets
from tests.support.broker import APP_ID, SCOPE, Broker, running_broker
from tests.support.cluster import RedisClusterProcesses
from tests.support.idp import Idp
from tests.support.load import LoadResult, TokenClient
from tests.support.polling import eventually, refreshes_reach
from tests.support.processes import now_ms, running
from tests.support.receiver import Receiver

TTL_S = 20  # the provider's access tokens: the worker refreshes each account every ~10 s
PARTITIONS = 8
SLOTS = 16_384


@pytest.fixture(scope="module")
def replicated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """Three masters with a replica each, on loopback ports."""
    path = Path(tmp_path_factory.mktemp("replicated"))
    with running(RedisClusterProcesses(path, masters=3, replicas=1)) as nodes:
        yield nodes


@pytest.fixture(scope="module")
def short_idp() -> Iterator[Idp]:
    """A provider of its own whose access tokens live 20 s (refresh tokens rotate on use)."""
    provider = Idp.start(access_token_ttl_s=TTL_S)
    yield provider
    provider.stop()


async def add_accounts(broker: Broker, ids: list[str], failed: list[int]) -> None:
    """Import accounts through the web API one after another (each queues accountAdded)."""
    headers = {"Authorization": f"Bearer {broker.api_token}"}
    for account in ids:
        minted = await asyncio.to_thread(broker.idp.mint, f"{account}-user", SCOPE)
        oauth2 = {
            "provider": APP_ID,
            "auth": {"user": f"{account}@example.test"},
            "refreshToken": minted["refresh_token"],
            "accessToken": minted["access_token"],
            "expires": iso(now_ms() + TTL_S * 1000),
        }
        body = {"account": account, "oauth2": oauth2}
        async with broker.http.post(
            f"{broker.base_url}/v1/account", json=body, headers=headers
        ) as resp:
            if resp.status != 200:
                failed.append(resp.status)


async def scheduled(redis: Redis, keys: Keys) -> list[str]:
    """Every account id in every partition's schedule (a member twice shows up twice)."""
    found: list[str] = []
    for part in range(keys.partitions):
        found += [str(m) for m in await redis.zrange(keys.schedule(part), 0, -1)]
    return found


@pytest.mark.timeout(240)
async def test_reshard_and_failover_under_load_lose_nothing(
    tmp_path: Path, replicated: RedisClusterProcesses, short_idp: Idp, receiver: Receiver
) -> None:
    """Slots move and a master fails over under load: no failed request, lost grant or event."""
    env = {"TOKENBROKER_SCHEDULE_PARTITIONS": str(PARTITIONS), "TOKENBROKER_APP_RATE_PER_S": "1000"}
    async with running_broker(tmp_path, short_idp, redis_url=replicated.url, **env) as broker:
        core = broker.core
        await core.settings.update({"webhooks": receiver.url, "webhooksEnabled": True})
        await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(now_ms())
        ids = [f"moving{i:02d}" for i in range(40)]
        life_ms = TTL_S * 1000
        await broker.import_accounts(ids, valid_ms=life_ms // 2, spread_ms=life_ms // 2,
                                     lifetime_ms=life_ms)  # fmt: skip
        await broker.start_web()
        broker.spawn_worker("worker")
        await refreshes_reach(short_idp, 10, within_s=30)  # the worker is refreshing

        added = [f"added{i:02d}" for i in range(30)]
        failed: list[int] = []
        async with TokenClient(broker.base_url, broker.api_token, min_validity_s=5) as client:
            load = asyncio.create_task(client.steady(ids, 50.0, 25.0))
            adding = asyncio.create_task(add_accounts(broker, added, failed))
            source, target = replicated.masters()[:2]
            slots = sum(hi - lo + 1 for lo, hi, port in replicated.shards() if port == source)
            await asyncio.to_thread(replicated.reshard, source, target, slots)
            promoted = await asyncio.to_thread(replicated.fail_over, target)
            before = short_idp.stats()["refresh_requests"]
            await refreshes_reach(short_idp, before + 10, within_s=30)  # refreshing goes on
            result: LoadResult = await load
            await adding
        assert source not in replicated.masters() and promoted in replicated.masters()

        every = ids + added
        await eventually(
            lambda: _events_for(receiver) >= set(added), 30, "an accountAdded for every import"
        )
        await broker.quiet(timeout_s=30)
        loss = await broker.loss(every)
        in_schedule = await scheduled(broker.redis, broker.core.keys)

    assert not failed, f"imports refused: {failed}"
    assert set(result.statuses) == {200}, result.summary()
    assert not loss.lost and loss.stale == 0, loss.summary()
    assert sorted(in_schedule) == sorted(every)  # every account once, no stray entry


def _events_for(receiver: Receiver) -> set[str]:
    """The accounts named by accountAdded events the receiver got."""
    return {e["account"] for e in receiver.events() if e.get("event") == "accountAdded"}


@dataclasses.dataclass
class Waiting:
    """A client on the replicated cluster and a ReplicaWait (300 ms) counting its timeouts."""

    redis: Redis
    wait: ReplicaWait
    timeouts: list[int]


@pytest.fixture
async def waiting(config: Config, replicated: RedisClusterProcesses) -> AsyncIterator[Waiting]:
    """A Waiting on the replicated cluster; its client closed after."""
    redis = create_redis(dataclasses.replace(config, redis_url=replicated.url))
    timeouts: list[int] = []
    wait = ReplicaWait(redis, Scripts(redis), 300, on_timeout=lambda: timeouts.append(1))
    try:
        yield Waiting(redis, wait, timeouts)
    finally:
        await redis.aclose()


@contextlib.contextmanager
def replica_stalled(nodes: RedisClusterProcesses, key: str) -> Iterator[int]:
    """The replica of `key`'s master hears nothing (SIGSTOP) within the block; its port."""
    replica = _replica_port(nodes, key)
    process = nodes.processes[nodes.ports.index(replica)]
    process.send_signal(signal.SIGSTOP)
    try:
        yield replica
    finally:
        process.send_signal(signal.SIGCONT)


async def test_a_rotated_write_waits_for_a_replica(
    waiting: Waiting, replicated: RedisClusterProcesses
) -> None:
    """WAIT after a durable write: acknowledged with a live replica, counted when it is stuck."""
    redis, wait, timeouts = waiting.redis, waiting.wait, waiting.timeouts
    key = "{tb:wait}:probe"
    try:
        await redis.hset(key, "f", "0")
        swapped, ack = await wait.run("hash_swap_fields", [key], ["f", "0", "1"])
        assert swapped == 1 and ack is Ack.ACKED and not timeouts
        with replica_stalled(replicated, key):
            swapped, ack = await wait.run("hash_swap_fields", [key], ["f", "1", "2"])
        assert swapped == 1 and ack is Ack.TIMED_OUT and timeouts == [1]  # written all the same
        assert await redis.hget(key, "f") == "2"
    finally:
        await redis.delete(key)


async def test_a_refresh_lock_waits_for_a_replica(
    waiting: Waiting, replicated: RedisClusterProcesses
) -> None:
    """A refresh lock is on the replica before it is used; a stuck replica delays it (counted)."""
    redis, wait, timeouts = waiting.redis, waiting.wait, waiting.timeouts
    key = "{tb:wait}:lock"
    try:
        assert await take_durably(wait, key, "first", 10_000) is not None
        assert _replica_holds(replicated, key) == "first" and not timeouts
        await redis.delete(key)
        with replica_stalled(replicated, key):
            lock = await take_durably(wait, key, "second", 10_000)
        assert lock is not None and timeouts == [1]  # taken all the same, after the bound
    finally:
        await redis.delete(key)


def _replica_port(nodes: RedisClusterProcesses, key: str) -> int:
    """The port of the replica of the master owning `key`."""
    master = nodes.owner(key)
    return next(p for p in nodes.ports if nodes.replica_of(p) == master)


def _replica_holds(nodes: RedisClusterProcesses, key: str) -> str | None:
    """What the replica of `key`'s master itself holds under `key` (READONLY: no redirect)."""
    port = _replica_port(nodes, key)
    with redis_sync.Redis(host="127.0.0.1", port=port, decode_responses=True) as node:
        node.execute_command("READONLY")
        return cast(str | None, node.get(key))


@pytest.fixture
def fresh_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """Three masters with a replica each, for a test that kills one of them."""
    path = Path(tmp_path_factory.mktemp("killed"))
    with running(RedisClusterProcesses(path, masters=3, replicas=1)) as nodes:
        yield nodes


@pytest.mark.timeout(240)
async def test_master_killed_after_a_rotation_burst_loses_no_grant(
    tmp_path: Path, fresh_cluster: RedisClusterProcesses, short_idp: Idp
) -> None:
    """SIGKILL a master right after a burst of rotations, its replica takes over: no grant lost.

    Every account is due at once and the provider holds each answer for a while: the worker
    takes all the refresh locks (on the replica too, as any lock is a moment later) and sends
    every refresh; then the victim master's replica is stalled (SIGSTOP), so each rotated
    refresh token the worker stores waits for an acknowledgement (WAIT, longer here than the
    stall) that never comes. The master is killed once it holds all of them, the replica
    takes over (CLUSTER FAILOVER TAKEOVER) and the worker's unacknowledged writes go again to
    the new master, while the locks there keep the web from sending a replaced refresh token.
    Loopback replication is too quick to lose a write outright (the stalled replica still
    finds the master's last bytes in its socket), so this proves the way back, not WAIT.
    """
    env = {
        "TOKENBROKER_SCHEDULE_PARTITIONS": str(PARTITIONS),
        "TOKENBROKER_APP_RATE_PER_S": "1000",
        "TOKENBROKER_WORKER_CONCURRENCY": "64",
        "TOKENBROKER_REPLICA_WAIT_MS": "10000",
    }
    async with running_broker(tmp_path, short_idp, redis_url=fresh_cluster.url, **env) as broker:
        keys = broker.core.keys
        ids = [f"burst{i:02d}" for i in range(48)]
        await broker.import_accounts(ids, valid_ms=TTL_S * 1000, lifetime_ms=TTL_S * 1000,
                                     due_in_ms=0)  # fmt: skip
        victim = _busiest(fresh_cluster, [keys.account(a) for a in ids])
        on_victim = [a for a in ids if fresh_cluster.owner(keys.account(a)) == victim]
        imported = await broker.accounts(on_victim)
        await asyncio.to_thread(short_idp.delay, 3000, 3000, 60_000)
        await broker.start_web()
        broker.spawn_worker("worker")
        await eventually(
            lambda: short_idp.stats()["refresh_in_flight"] >= len(ids),
            30,
            "every refresh sent and held by the provider",
        )
        replica = await asyncio.to_thread(fresh_cluster.stall_replica, victim)
        try:
            await asyncio.to_thread(short_idp.delay, 0, 0, 0)  # later refreshes answered at once

            async def rotated_on_victim() -> bool:
                found = await broker.accounts(on_victim)
                return all(
                    (found[a].updated_ms or 0) > (imported[a].updated_ms or 0) for a in on_victim
                )

            await eventually(rotated_on_victim, 30, "the burst stored on the master")
            fresh_cluster.kill(victim)  # what it acknowledged and did not pass on is gone
        finally:
            replica.send_signal(signal.SIGCONT)
        promoted = await asyncio.to_thread(fresh_cluster.fail_over, victim, takeover=True)

        async with TokenClient(broker.base_url, broker.api_token, min_validity_s=5) as client:
            load = asyncio.create_task(client.steady(ids, 20.0, 15.0))
            after = short_idp.stats()["refresh_requests"]
            await refreshes_reach(short_idp, after + len(ids), within_s=60)  # a full round more
            result: LoadResult = await load
        await broker.quiet(timeout_s=30)
        loss = await broker.loss(ids)
        in_schedule = await scheduled(broker.redis, keys)

    assert on_victim and promoted == fresh_cluster.port_of(replica)
    assert victim not in fresh_cluster.masters() and promoted in fresh_cluster.masters()
    assert not loss.lost and loss.stale == 0, loss.summary()
    assert set(result.statuses) == {200}, result.summary()
    assert sorted(in_schedule) == sorted(ids)


def _busiest(nodes: RedisClusterProcesses, keys: list[str]) -> int:
    """The master port owning the most of `keys`."""
    owners = [nodes.owner(key) for key in keys]
    return max(set(owners), key=owners.count)
