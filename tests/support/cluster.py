"""A 3-master Redis Cluster on loopback ports (port and port + 10000 free), for tests."""

from __future__ import annotations

import shutil
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
    """PING answered ("up") or cluster_state:ok ("ok") on one node; False while refused."""
    try:
        with _node(port) as client:
            if what == "up":
                return bool(client.ping())
            info = client.execute_command("CLUSTER INFO")  # parsed into a dict by redis-py
            return isinstance(info, dict) and info.get("cluster_state") == "ok"
    except redis.ConnectionError:
        return False


class RedisClusterProcesses:
    """Three cluster-enabled redis-servers (AOF on) joined into one cluster, no replicas."""

    def __init__(self, data_dir: Path, masters: int = 3) -> None:
        self.data_dir = data_dir
        self.ports = cluster_ports(masters)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The REDIS_URL of the cluster: every node as a startup node."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

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

    def _create(self) -> None:
        """Assign the slots: redis-cli --cluster create, else ADDSLOTSRANGE and MEET."""
        nodes = [f"127.0.0.1:{p}" for p in self.ports]
        if shutil.which("redis-cli"):
            subprocess.run(
                ["redis-cli", "--cluster", "create", *nodes, "--cluster-replicas", "0",
                 "--cluster-yes"],
                capture_output=True, timeout=60, check=True,
            )  # fmt: skip
            return
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
        with _node(self.ports[0]) as client:
            ranges = []
            for shard in client.execute_command("CLUSTER SHARDS"):  # parsed by redis-py
                port = next(int(n["port"]) for n in shard["nodes"] if n["role"] == "master")
                slots = shard["slots"]
                ranges += [
                    (int(slots[i]), int(slots[i + 1]), port) for i in range(0, len(slots), 2)
                ]
            return ranges

    def owner(self, key: str) -> int:
        """The port of the master owning `key` (CLUSTER KEYSLOT, then the shard of that slot)."""
        with _node(self.ports[0]) as client:
            slot = int(client.execute_command("CLUSTER KEYSLOT", key))
        return next(port for low, high, port in self.shards() if low <= slot <= high)

    def stop(self) -> None:
        """Stop every node and wait for it to exit."""
        stop_processes(self.processes)
        self.processes.clear()
