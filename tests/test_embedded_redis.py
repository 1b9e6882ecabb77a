"""The embedded Redis of `tokenbroker dev`: started when REDIS_URL is unset, never orphaned."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from service.store.embedded import RedisProcess, free_port
from tests.support.polling import eventually_blocking

TOKENBROKER = str(Path(sys.executable).parent / "tokenbroker")


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _health(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_process_stop_and_restart_keeps_data(tmp_path: Path) -> None:
    """A stopped and restarted server on the same port keeps its data (AOF)."""
    server = RedisProcess(tmp_path / "r")
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"SET k v\r\n")
            assert sock.recv(16).startswith(b"+OK")
        server.stop()
        assert not _answers(server.port)
        server.start()
        with socket.create_connection(("127.0.0.1", server.port)) as sock:
            sock.sendall(b"GET k\r\n")
            assert b"v" in sock.recv(32)
    finally:
        server.stop()


def test_dev_embeds_redis_and_it_dies_with_a_killed_parent(tmp_path: Path) -> None:
    """`tokenbroker dev` without REDIS_URL starts Redis; SIGKILL of dev leaves none behind."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REDIS_URL", "TOKENBROKER_"))}
    env.update({"TOKENBROKER_PORT": str(port), "TOKENBROKER_LOG_FORMAT": "json"})
    proc = subprocess.Popen(
        [TOKENBROKER, "dev"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        eventually_blocking(lambda: _health(port), 20, "dev to answer /health", every_s=0.05)
        key = tmp_path / "var" / "secret.key"
        assert key.exists()
        assert key.stat().st_mode & 0o777 == 0o600
        redis_port = int((tmp_path / "var" / "redis.url").read_text().split(":")[2].split("/")[0])
        assert _answers(redis_port)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        eventually_blocking(
            lambda: not _answers(redis_port), 10, "the embedded Redis to end", every_s=0.05
        )
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
