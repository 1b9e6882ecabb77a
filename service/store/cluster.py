"""The Redis Cluster client: MULTI/EXEC and pub/sub on a plain connection to the right node."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.client import Pipeline, PubSub
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import SSLConnection
from redis.exceptions import AskError, MovedError, TryAgainError, WatchError

REDIRECTS = 16  # as many redirections as redis-py follows for one command
TRY_AGAIN_S = 0.05  # a slot in the middle of a migration: wait this long, then again


class ClusterClient(RedisCluster):
    """RedisCluster whose transactions and subscriptions use plain per-node connections.

    redis-py's cluster pipeline refuses PUBLISH inside MULTI/EXEC (the stores publish
    their invalidation in the same transaction), runs transactional commands through a
    thread, and its pub/sub needs the slot map before the first command. Every
    MULTI/EXEC here touches one hash tag, so it runs unchanged on the node owning that
    slot (a key of another slot fails there with CROSSSLOT); PUBLISH reaches every node
    of a cluster, so a subscription on any node hears every invalidation.
    """

    def __init__(self, *, node_options: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._node_options = node_options
        self._node_pools: dict[str, ConnectionPool] = {}
        self._plain = Redis(connection_pool=self._pool(self.startup_nodes_list()[0]))

    def startup_nodes_list(self) -> list[ClusterNode]:
        """The nodes known now: the slot map's, or the startup nodes before the first call."""
        known = list(self.nodes_manager.nodes_cache.values())
        return known or list(self.nodes_manager.startup_nodes.values())

    def _pool(self, node: ClusterNode) -> ConnectionPool:
        pool = self._node_pools.get(node.name)
        if pool is None:
            pool = ConnectionPool(host=node.host, port=node.port, **self._node_options)
            self._node_pools[node.name] = pool
        return pool

    async def pool_for(self, key: str) -> ConnectionPool:
        """The connection pool of the master that owns `key`'s slot."""
        if self._initialize:
            await self.initialize()
        return self._pool(self.nodes_manager.get_node_from_slot(self.keyslot(key)))

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> Any:
        """A cluster pipeline, or for transaction=True one MULTI/EXEC on one node."""
        if transaction:
            return SlotTransaction(self)
        return super().pipeline(transaction, shard_hint)

    async def transaction(  # type: ignore[override]
        self, func: Callable[[Pipeline], Awaitable[Any]], *watches: str, **kwargs: Any
    ) -> Any:
        """WATCH `watches`, run `func`, EXEC; again from the start when a watched key changed."""
        value_from_callable = kwargs.pop("value_from_callable", False)
        async with SlotTransaction(self) as pipe:
            for _ in range(REDIRECTS):
                try:
                    await pipe.watch(*watches)
                    value = await func(pipe)
                    result = await pipe.execute()
                    return value if value_from_callable else result
                except WatchError:
                    continue
                except (MovedError, AskError, TryAgainError) as err:
                    await pipe.reset()  # type: ignore[no-untyped-call]  # the watch is gone: start again on the slot's owner
                    await self.follow(err)
            raise WatchError("the watched keys kept moving between nodes")

    async def follow(self, err: MovedError | AskError | TryAgainError) -> None:
        """Learn where a slot went (MOVED: reread the slot map) or wait out a migration."""
        if isinstance(err, MovedError):
            await self.nodes_manager.initialize()
        else:
            await asyncio.sleep(TRY_AGAIN_S)

    def pubsub(self, **kwargs: Any) -> Any:  # type: ignore[override]
        """A subscription on one node (a random known one, so a retry may pick another)."""
        node = random.choice(self.startup_nodes_list())  # noqa: S311 - spreading, not security
        return PubSub(connection_pool=self._pool(node), **kwargs)

    async def aclose(self, *args: Any, **kwargs: Any) -> None:
        """Close the cluster connections and every per-node pool."""
        await super().aclose(*args, **kwargs)
        for pool in self._node_pools.values():
            await pool.aclose()


class SlotTransaction(Pipeline):
    """A MULTI/EXEC pipeline bound, on WATCH or EXEC, to the node owning its first key."""

    def __init__(self, cluster: ClusterClient) -> None:
        plain = cluster._plain
        super().__init__(plain.connection_pool, plain.response_callbacks, True, None)
        self._cluster = cluster

    async def _bind(self, key: str) -> None:
        if self.connection is None:
            self.connection_pool = await self._cluster.pool_for(key)

    async def watch(self, *names: Any) -> Any:  # type: ignore[override]
        """WATCH on the node owning the first name."""
        await self._bind(str(names[0]))
        return await super().watch(*names)

    async def execute(self, raise_on_error: bool = True) -> list[Any]:
        """EXEC on the node owning the first key (PUBLISH names a channel, not a key).

        A slot that moved (MOVED) is followed to its new owner, one being migrated (ASK)
        to the importing node with ASKING before MULTI, and TRYAGAIN waited out; the
        queued commands are sent again each time. Under WATCH nothing is sent again: the
        watch was on the old node, so the caller starts over (WatchError).
        """
        stack = list(self.command_stack)
        keys = [args[1] for args, _ in stack if str(args[0]).upper() != "PUBLISH"]
        for _ in range(REDIRECTS):
            if keys:
                await self._bind(str(keys[0]))
            watched = self.watching
            try:
                return await super().execute(raise_on_error)
            except (MovedError, AskError, TryAgainError) as err:
                if watched:
                    await self._cluster.follow(err)
                    raise WatchError("the watched slot moved") from err
                self.command_stack = list(stack)  # execute() emptied it
                await self._redirect(err)
        raise TryAgainError("the slot kept moving between nodes")

    async def _redirect(self, err: MovedError | AskError | TryAgainError) -> None:
        """Prepare the next attempt: the new owner, the importing node (ASKING), or a pause."""
        if not isinstance(err, AskError):
            await self._cluster.follow(err)
            return
        node = self._cluster.nodes_manager.get_node(host=err.host, port=err.port)
        self.connection_pool = self._cluster._pool(node or ClusterNode(err.host, err.port))
        conn = await self.connection_pool.get_connection()  # type: ignore[no-untyped-call]
        await conn.send_command("ASKING")  # kept by the server through MULTI ... EXEC
        await conn.read_response()
        self.connection = conn  # execute() uses it and reset() returns it to the pool


def cluster_client(nodes: list[ClusterNode], ssl: bool, **options: Any) -> ClusterClient:
    """A ClusterClient whose per-node pools use the same timeouts, retries and credentials."""
    node_options = dict(options)
    if ssl:
        node_options["connection_class"] = SSLConnection
    return ClusterClient(node_options=node_options, startup_nodes=nodes, ssl=ssl, **options)
