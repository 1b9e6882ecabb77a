"""`tokenbroker web`: one web process, or N sharing one port (--processes, SO_REUSEPORT).

The parent only supervises: each child is a whole `tokenbroker web` with its own process
cache, kept correct by the invalidation channel like any other web process. The kernel
spreads new connections over the children. SIGTERM/SIGINT go to every child; when one
child exits, the others are stopped and the parent exits with that child's code, so that
the process manager (systemd, the container runtime) restarts the whole set.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from aiohttp import web

from service import logs
from service.ops.environ import dev_environ, load_config

STOP_GRACE_S = 30.0  # a child still running after this long is killed


def process_count(value: str) -> int:
    """Parse --processes: a positive number, or `auto` (the cores this process may use)."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)))
    try:
        count = int(value)
    except ValueError:
        raise ValueError("--processes must be a positive number or auto") from None
    if not 1 <= count <= 256:
        raise ValueError("--processes must be between 1 and 256, or auto")
    return count


def child_command(host: str | None, port: int | None) -> list[str]:
    """The command of one child: `tokenbroker web` on the shared port."""
    args = [sys.executable, "-m", "service", "web", "--reuse-port"]
    if host:
        args += ["--host", host]
    if port:
        args += ["--port", str(port)]
    return args


def supervise(count: int, host: str | None, port: int | None) -> int:
    """Start `count` children and wait; returns the exit code for the parent."""
    command = child_command(host, port)  # this interpreter and our own arguments only
    children = [subprocess.Popen(command) for _ in range(count)]  # noqa: S603
    stopping = False

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    code = 0
    while any(child.poll() is None for child in children):
        ended = [child for child in children if child.poll() is not None]
        if ended and not stopping:
            code = ended[0].returncode or 1
            forward(signal.SIGTERM, None)
        time.sleep(0.2)
    _reap(children)
    return code


def _reap(children: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def cmd_web(args: argparse.Namespace) -> int:
    """Run the web process, or with --check tell whether the one on this host answers."""
    env = dev_environ()
    if args.host:
        env["TOKENBROKER_HOST"] = args.host
    if args.port:
        env["TOKENBROKER_PORT"] = str(args.port)
    config = load_config(env)
    if args.check:
        from service.ops.healthcheck import web_healthy

        return 0 if web_healthy(config) else 1
    try:
        count = process_count(args.processes)
    except ValueError as exc:
        print(f"tokenbroker: {exc}", file=sys.stderr)
        return 2
    if count > 1:
        return supervise(count, args.host, args.port)
    logs.configure(config.log_format)
    from service.web.app import create_app, freeze_heap

    app = create_app(config)
    app.on_startup.append(freeze_heap)
    web.run_app(
        app,
        host=config.host,
        port=config.port,
        print=None,
        access_log=None,
        reuse_port=args.reuse_port or None,
    )
    return 0
