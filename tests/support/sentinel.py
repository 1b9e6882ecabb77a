"""A Redis master, one replica and one Sentinel on free loopback ports, for tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from service.store.embedded import _die_with_parent, server_binary
from tests.support.polling import eventually_blocking
from tests.support.processes import stop_processes

SERVICE = "tb"


def free_ports(count: int) -> list[int]:
    """`count` distinct loopback ports nobody listens on right now."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in ports:
            ports.append(port)
    return ports


def _client(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)


class RedisSentinelProcesses:
    """A master (AOF on), a replica of it and one sentinel monitoring them as `tb`."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.master_port, self.replica_port, self.sentinel_port = free_ports(3)
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """The REDIS_URL naming the service through the sentinel (db 0)."""
        return f"redis+sentinel://127.0.0.1:{self.sentinel_port}/{SERVICE}/0"

    def _spawn(self, args: list[str]) -> None:
        self.processes.append(
            subprocess.Popen(
                [server_binary(), *args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,  # nothing outlives a killed test run
            )
        )

    def _server(self, port: int, *extra: str) -> None:
        node_dir = self.data_dir / str(port)
        node_dir.mkdir(parents=True, exist_ok=True)
        self._spawn(
            ["--port", str(port), "--bind", "127.0.0.1", "--appendonly", "yes",
             "--dir", str(node_dir), "--save", "", *extra]
        )  # fmt: skip

    def start(self, timeout_s: float = 30.0) -> None:
        """Start master and replica, wait for the sync, then the sentinel until it sees both."""
        deadline = time.monotonic() + timeout_s
        self._server(self.master_port)
        self._server(self.replica_port, "--replicaof", "127.0.0.1", str(self.master_port))
        self.wait(deadline, lambda: self._info(self.replica_port, "master_link_status") == "up")
        sentinel_dir = self.data_dir / "sentinel"
        sentinel_dir.mkdir(parents=True, exist_ok=True)
        conf = sentinel_dir / "sentinel.conf"
        conf.write_text(
            f"port {self.sentinel_port}\n"
            "bind 127.0.0.1\n"
            f"dir {sentinel_dir}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
        )
        self._spawn([str(conf), "--sentinel"])
        self.wait(deadline, self._replica_known)

    @staticmethod
    def _info(port: int, field: str) -> str | None:
        try:
            with _client(port) as client:
                return str(client.info("replication").get(field))
        except redis.ConnectionError:
            return None

    def _sentinel_call(self, *args: str) -> object:
        with _client(self.sentinel_port) as client:
            return client.execute_command(*args)

    def _replica_known(self) -> bool:
        """The sentinel lists a healthy replica (a failover can pick it)."""
        try:
            replicas = self._sentinel_call("SENTINEL", "REPLICAS", SERVICE)
        except redis.ConnectionError:
            return False
        return any(
            "s_down" not in r["flags"] and r.get("master-link-status") == "ok"
            for r in replicas  # type: ignore[attr-defined]
        )

    def master(self) -> int:
        """The master's port as the sentinel names it now."""
        addr = self._sentinel_call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
        return int(addr[1])  # type: ignore[index]

    def failover(self, timeout_s: float = 30.0) -> int:
        """SENTINEL FAILOVER, then wait until the old master follows the new; the new port."""
        before = self.master()
        deadline = time.monotonic() + timeout_s
        self.wait(deadline, self._replica_known)
        self._sentinel_call("SENTINEL", "FAILOVER", SERVICE)
        self.wait(deadline, lambda: self.master() != before)
        after = self.master()
        self.wait(deadline, lambda: self._info(after, "role") == "master")
        self.wait(deadline, lambda: self._info(before, "master_port") == str(after))
        return after

    @staticmethod
    def wait(deadline: float, condition: Callable[[], bool]) -> None:
        """Poll `condition` until it holds; fail once the monotonic clock passes `deadline`."""
        eventually_blocking(
            condition,
            max(0.0, deadline - time.monotonic()),
            "the sentinel setup to reach the expected state",
            every_s=0.05,
        )

    def stop(self) -> None:
        """Stop the sentinel and both servers and wait for them to exit."""
        stop_processes(self.processes[::-1])
        self.processes.clear()
