"""Subprocess harness shared by the process-level tests and benches: workers, logs, waits."""

from __future__ import annotations

import argparse
import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from aiohttp import web

from service.clock import SystemClock
from tests.support.polling import Condition, eventually

TOKENBROKER = Path(sys.executable).parent / "tokenbroker"
PR_SET_PDEATHSIG = 1
LIBC = ctypes.CDLL("libc.so.6", use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """In the child: get SIGTERM when the test process dies, so no worker outlives it.

    libc is loaded beforehand: the child of a threaded parent must not dlopen.
    """
    if LIBC is not None:
        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def now_ms() -> int:
    """The wall clock in epoch ms (the workers' clock)."""
    return SystemClock().now_ms()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tail(path: Path, lines: int = 15) -> str:
    """The last `lines` lines of a log file."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def stop_processes(
    processes: Sequence[subprocess.Popen[Any]], timeout_s: float = 10
) -> list[int | None]:
    """SIGTERM every process, then wait for each (kill after `timeout_s`); the exit codes."""
    for process in processes:
        if process.poll() is None:
            process.terminate()
    codes: list[int | None] = []
    for process in processes:
        try:
            codes.append(process.wait(timeout=timeout_s))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
    return codes


class Startable(Protocol):
    """Something with start() and stop(): a set of redis-server nodes."""

    def start(self) -> None:
        """Start every process and wait until it is ready."""

    def stop(self) -> None:
        """Stop every process."""


S = TypeVar("S", bound=Startable)


@contextmanager
def running(nodes: S) -> Iterator[S]:
    """Start `nodes`, yield them, and stop them however the block ends."""
    try:
        nodes.start()
        yield nodes
    finally:
        nodes.stop()


def start_worker(
    args: Sequence[str], env: dict[str, str], cwd: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start `tokenbroker worker ARGS` with `env`, its stdout and stderr to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(TOKENBROKER), "worker", *args],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=die_with_parent,
        )


@dataclass
class WorkerProc:
    """One `tokenbroker worker` subprocess and the file holding its stderr (JSON lines)."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path
    expect_alive: bool = True

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line written so far (the worker writes within 50 ms and at exit)."""
        lines: list[dict[str, Any]] = []
        for raw in self.log.read_bytes().splitlines():
            try:
                line = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if isinstance(line, dict):
                lines.append(line)
        return lines

    def events(self, name: str) -> list[dict[str, Any]]:
        """The log lines whose event is `name`."""
        return [line for line in self.logs() if line.get("event") == name]

    def tail(self, lines: int = 15) -> str:
        """The end of the log, for failure messages."""
        text = self.log.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} (exit {self.process.poll()}):\n" + "\n".join(text)

    async def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 15.0) -> int:
        """Send `sig` and return the exit code (fails if it does not exit in time)."""
        self.expect_alive = False
        self.process.send_signal(sig)
        await eventually(
            lambda: self.process.poll() is not None,
            timeout_s,
            f"{self.name} to exit",
            diagnostics=self.tail,
        )
        code = self.process.poll()
        assert code is not None
        return code


async def wait_until(
    condition: Condition,
    what: str,
    timeout_s: float,
    *,
    poll_s: float,
    workers: Iterable[WorkerProc],
    diagnostics: Callable[[], str],
    check: Callable[[], None] = lambda: None,
) -> None:
    """Poll `condition` until it holds; fail naming `what` (and any dead worker) otherwise.

    `check` runs after each miss, before the workers are looked at (it may assert).
    """

    def alive() -> None:
        check()
        for worker in workers:
            if worker.expect_alive and worker.process.poll() is not None:
                raise AssertionError(
                    f"{worker.name} exited while waiting for {what}\n{diagnostics()}"
                )

    await eventually(
        condition, timeout_s, what, every_s=poll_s, check=alive, diagnostics=diagnostics
    )


async def _health(request: web.Request) -> web.Response:
    """GET /health of a bench server: 200 "ok"."""
    return web.Response(text="ok")


def serve_on_loopback(create_app: Callable[[], web.Application], description: str | None) -> None:
    """Serve `create_app()` plus GET /health on 127.0.0.1 at --port (default loop, run_app)."""
    args = argparse.ArgumentParser(description=description)
    args.add_argument("--port", type=int, required=True)
    ns = args.parse_args()
    app = create_app()
    app.router.add_get("/health", _health)
    web.run_app(app, host="127.0.0.1", port=ns.port, print=None, access_log=None)


def worker_env(redis_url: str, secret_b64: str, tmp: Path, **extra: str) -> dict[str, str]:
    """A worker's environment: this process's minus tokenbroker variables, short times, `extra`."""
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("TOKENBROKER_")
    }
    env.update(
        {
            "REDIS_URL": redis_url,
            "TOKENBROKER_SECRET": secret_b64,
            "TOKENBROKER_LOG_FORMAT": "json",
            "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",
            "TOKENBROKER_POLL_MS": "100",
            "TOKENBROKER_REDIS_TIMEOUT_S": "1",
            "TOKENBROKER_PROVIDER_TIMEOUT_S": "3",
            "TOKENBROKER_SHUTDOWN_GRACE_S": "5",
            "TOKENBROKER_WORKER_HEALTH_FILE": str(tmp / "worker.health"),
            **extra,
        }
    )
    return env
