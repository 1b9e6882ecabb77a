"""Writes that must survive a failover: run the script, then WAIT for a replica to hold it."""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import AskError, MovedError, TryAgainError

from service.store.cluster import ClusterClient
from service.store.scripts import Scripts

RECHECK_S = 10.0  # how long a node's replica count is believed before INFO is asked again


class Ack(enum.Enum):
    """What became of the wait after a durable write."""

    OFF = "off"  # waiting is switched off (TOKENBROKER_REPLICA_WAIT_MS=0)
    NO_REPLICAS = "no_replicas"  # the node has none: there is nothing to wait for
    ACKED = "acked"  # a replica holds the write
    TIMED_OUT = "timed_out"  # no replica said so within the bound (the write stands)


class ReplicaWait:
    """Runs a script and, where the key's node has replicas, WAITs (bounded) on one of them.

    WAIT covers the writes of the connection it is sent on, so the script and the WAIT go
    in one pipeline on one connection to the node owning the first key. A node's replica
    count comes from INFO replication, asked again every RECHECK_S: a node without
    replicas (a single Redis, a test) never pays for the wait.
    """

    def __init__(
        self,
        redis: Redis,
        scripts: Scripts,
        timeout_ms: int,
        on_timeout: Callable[[], None] = lambda: None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis, self.scripts, self.timeout_ms = redis, scripts, timeout_ms
        self.on_timeout, self.monotonic = on_timeout, monotonic
        self._replicas: dict[int, tuple[float, int]] = {}  # id(pool) -> (checked at, count)
        self._nodes: dict[int, Redis] = {}

    async def run(self, name: str, keys: list[str], args: list[Any]) -> tuple[Any, Ack]:
        """Run script `name`; then wait for a replica when the node has one."""
        if self.timeout_ms <= 0:
            return await self.scripts.run(name, keys, args), Ack.OFF
        node = await self._node(keys[0])
        if await self._replica_count(node) == 0:
            return await self.scripts.run(name, keys, args), Ack.NO_REPLICAS
        pipe = node.pipeline(transaction=False)
        await self.scripts.queue(pipe, name, keys, args)
        pipe.execute_command("WAIT", 1, self.timeout_ms)
        try:
            result, acked = await pipe.execute()
        except (MovedError, AskError, TryAgainError) as err:  # the slot moved: no wait this once
            if isinstance(self.redis, ClusterClient):
                await self.redis.follow(err)
            return await self.scripts.run(name, keys, args), Ack.TIMED_OUT
        if int(acked) >= 1:
            return result, Ack.ACKED
        self.on_timeout()
        return result, Ack.TIMED_OUT

    async def _node(self, key: str) -> Redis:
        """A client on the node owning `key` (the client itself outside a cluster)."""
        if not isinstance(self.redis, ClusterClient):
            return self.redis
        pool = await self.redis.pool_for(key)
        node = self._nodes.get(id(pool))
        if node is None:
            node = self._nodes[id(pool)] = Redis(connection_pool=pool)
        return node

    async def _replica_count(self, node: Redis) -> int:
        """The node's connected replicas, as INFO said at most RECHECK_S ago."""
        pool_id = id(node.connection_pool)
        checked = self._replicas.get(pool_id)
        now = self.monotonic()
        if checked is not None and now - checked[0] < RECHECK_S:
            return checked[1]
        info = await node.info("replication")
        count = int(info.get("connected_slaves", 0))
        self._replicas[pool_id] = (now, count)
        return count
