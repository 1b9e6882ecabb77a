"""A Redis Cluster on loopback ports, for tests: create (with replicas), reshard, fail over."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from service.store.embedded import _die_with_parent, server_binary
from tests.support.polling import eventually_blocking
from tests.support.processes import stop_processes

BUS_OFFSET = 10_000  # a cluster node also listens on its port + 10000 (the cluster bus)
SLOTS = 16_384


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def cluster_ports(count: int) -> list[int]:
    """`count` ports p (in 20000-55000) where p and p + 10000 are both free right now."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if 20_000 <= port <= 55_000 and port not in ports and _free(port + BUS_OFFSET):
            ports.append(port)
    return ports


def _node(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)


def _ready(port: int, what: str) -> bool:
    """Whether the node on `port` is `what`: "up", "ok", "synced" or "unlinked".

    PING answered, cluster_state:ok, a replica's link up, or down (it has read all its
    master sent, to the end of the connection).
    """
    try:
        with _node(port) as client:
            if what == "up":
                return bool(client.ping())
            if what in ("synced", "unlinked"):
                link = client.info("replication").get("master_link_status")
                return bool(link == ("up" if what == "synced" else "down"))
            info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
            return isinstance(info, dict) and info.get("cluster_state") == "ok"
    except redis.ConnectionError:
        return False


class RedisClusterProcesses:
    """Cluster-enabled redis-servers (AOF on) joined into one cluster: masters (and replicas)."""

    def __init__(self, data_dir: Path, masters: int = 3, replicas: int = 0) -> None:
        self.data_dir = data_dir
        self.replicas = replicas
        self.ports = cluster_ports(masters * (1 + replicas))
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The REDIS_URL of the cluster: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def masters(self) -> list[int]:
        """The ports of the nodes that are masters now."""
        return sorted({port for _, _, port in self.shards()})

    def start(self, timeout_s: float = 30.0) -> None:
        """Start the nodes, assign the slots, and wait until every node says cluster_state:ok."""
        for port in self.ports:
            node_dir = self.data_dir / str(port)
            node_dir.mkdir(parents=True, exist_ok=True)
            args = [
                server_binary(),
                "--port", str(port),
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.data_dir / f"nodes-{port}.conf"),
                "--appendonly", "yes",
                "--dir", str(node_dir),
                "--bind", "127.0.0.1",
                "--save", "",
                "--repl-diskless-sync-delay", "0",  # a replica syncs at once, not after 5 s
                "--cluster-allow-replica-migration", "no",  # an emptied master keeps its replica
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    preexec_fn=_die_with_parent,  # no node outlives a killed test run
                )
            )
        deadline = time.monotonic() + timeout_s
        for port in self.ports:
            self._wait(deadline, port, "up")
        self._create()
        for port in self.ports:
            self._wait(deadline, port, "ok")
            if self.replica_of(port) is not None:
                self._wait(deadline, port, "synced")

    def _create(self) -> None:
        """Assign the slots: redis-cli --cluster create, else ADDSLOTSRANGE and MEET."""
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        if shutil.which("redis-cli"):
            subprocess.run(
                ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas",
                 str(self.replicas), "--cluster-yes"],
                capture_output=True, timeout=60, check=True,
            )  # fmt: skip
            return
        assert not self.replicas, "replicas need redis-cli (Debian's redis-tools)"
        share = SLOTS // len(self.ports)
        for i, port in enumerate(self.ports):
            last = SLOTS - 1 if i == len(self.ports) - 1 else (i + 1) * share - 1
            with _node(port) as client:
                client.execute_command("CLUSTER ADDSLOTSRANGE", i * share, last)
                for other in self.ports[:i]:
                    client.execute_command("CLUSTER MEET", "127.0.0.1", other)

    @staticmethod
    def _wait(deadline: float, port: int, what: str) -> None:
        eventually_blocking(
            lambda: _ready(port, what),
            max(0.0, deadline - time.monotonic()),
            f"redis cluster node {port} {what}",
            every_s=0.05,
        )

    def shards(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, master port) of every slot range, from CLUSTER SHARDS."""
        with _node(self._live()) as client:
            ranges = []
            for shard in client.execute_command("CLUSTER SHARDS"):  # parsed by redis-py
                slots = shard["slots"]
                if not slots:
                    continue
                port = next(
                    int(n["port"])
                    for n in shard["nodes"]
                    if n["role"] == "master" and n["health"] == "online"
                )
                ranges += [
                    (int(slots[i]), int(slots[i + 1]), port) for i in range(0, len(slots), 2)
                ]
            return ranges

    def _live(self) -> int:
        """The port of a node that is running (the first one, unless it was killed)."""
        return next(
            p for p, proc in zip(self.ports, self.processes, strict=True) if proc.poll() is None
        )

    def owner(self, key: str) -> int:
        """The port of the master owning `key` (CLUSTER KEYSLOT, then the shard of that slot)."""
        with _node(self._live()) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        return next(port for low, high, port in self.shards() if low <= slot <= high)

    def reshard(self, source: int, target: int, slots: int) -> None:
        """Move `slots` slots and their keys from master `source` to master `target`.

        `redis-cli --cluster reshard`, as an operator runs it: slot by slot MIGRATING and
        IMPORTING, MIGRATE of the keys in batches, then SETSLOT NODE on every master.
        """
        subprocess.run(
            ["redis-cli", "--cluster", "reshard", f"127.0.0.1:{source}",
             "--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target),
             "--cluster-slots", str(slots), "--cluster-pipeline", "10", "--cluster-yes"],
            capture_output=True, timeout=120, check=True,
        )  # fmt: skip

    def fail_over(self, master: int, timeout_s: float = 30.0, *, takeover: bool = False) -> int:
        """CLUSTER FAILOVER on a replica of `master`; return the replica's port, now master.

        `takeover` is the operator's way when the master is gone: the replica takes the
        slots on its own say (CLUSTER FAILOVER TAKEOVER), without the master or a vote. It
        is sent once the replica has read what the dead master had sent it (its link is
        down), as a replica has long before any real failover ends: a replica promoted with
        received bytes still unread drops them, which no deployment does.
        """
        replica = next(p for p in self.ports if self._replicates(p, master))
        if takeover:
            self._wait(time.monotonic() + timeout_s, replica, "unlinked")
        with _node(replica) as client:
            client.execute_command("CLUSTER FAILOVER", *(["TAKEOVER"] if takeover else []))
        eventually_blocking(
            lambda: replica in self.masters() and master not in self.masters(),
            timeout_s,
            f"replica {replica} takes over from {master}",
            every_s=0.05,
        )
        return replica

    def stall_replica(self, master: int) -> subprocess.Popen[bytes]:
        """SIGSTOP the replica of `master` (it hears nothing until SIGCONT); return its process.

        The master's data is first WAITed onto it, so that only later writes are missing.
        """
        replica = next(p for p in self.ports if self._replicates(p, master))
        with _node(master) as client:
            client.execute_command("WAIT", 1, 5000)
        process = self.processes[self.ports.index(replica)]
        process.send_signal(signal.SIGSTOP)
        return process

    def port_of(self, process: subprocess.Popen[bytes]) -> int:
        """The port of the node that `process` runs."""
        return self.ports[self.processes.index(process)]

    def kill(self, port: int) -> None:
        """SIGKILL the node on `port`: no shutdown, no last write to its replica."""
        process = self.processes[self.ports.index(port)]
        process.kill()
        process.wait(timeout=10)

    def _replicates(self, port: int, master: int) -> bool:
        """Whether the node on `port` is a replica of `master` (False for a dead node)."""
        try:
            return self.replica_of(port) == master
        except redis.ConnectionError:
            return False

    def node_id(self, port: int) -> str:
        """The cluster node id of the node on `port`."""
        with _node(port) as client:
            return str(client.execute_command("CLUSTER MYID"))

    def replica_of(self, port: int) -> int | None:
        """The port of the master that the node on `port` replicates, None for a master."""
        with _node(port) as client:
            info = client.info("replication")
        return int(info["master_port"]) if info.get("role") == "slave" else None

    def stop(self) -> None:
        """Stop every node and wait for it to exit."""
        stop_processes(self.processes)
        self.processes.clear()
