"""Micro-benchmark: the cost of the token endpoint's log line, written at once or buffered.

Each measurement runs in a child process whose stderr is /dev/null or a pipe the parent
drains; the child calls logs.configure() and logs the request line N times in a running event
loop: `info` (buffered, written by the loop) or `warning` (written at once, one write a line).
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time

import structlog

from service import logs

LINES = 100_000


async def _log_lines(method: str, lines: int) -> float:
    """Seconds per line for `lines` request lines logged with `method`, yielding every 100."""
    log = getattr(structlog.get_logger("http"), method)
    structlog.contextvars.bind_contextvars(request_id="f3a9c1d2-000042", account="alpha")
    started = time.perf_counter()
    for index in range(lines):
        log(
            "request",
            method="GET",
            path="/v1/account/alpha/oauth-token",
            status=200,
            duration_ms=1.25,
        )
        if index % 100 == 99:
            await asyncio.sleep(0)  # like requests do: the loop gets to run its timers
    return (time.perf_counter() - started) / lines


def _child(method: str, lines: int) -> None:
    logs.configure("json")
    print(f"{asyncio.run(_log_lines(method, lines)) * 1e6:.2f}")


def _measure(method: str, target: str, lines: int) -> float:
    """µs per line in a fresh child writing its stderr to `target` (devnull or pipe)."""
    stderr = subprocess.DEVNULL if target == "devnull" else subprocess.PIPE
    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.log_lines", "--child", method, "--lines", str(lines)],
        stdout=subprocess.PIPE,
        stderr=stderr,
        check=True,
    )
    return float(done.stdout)


def main() -> None:
    """Print the best of `--repeat` runs for each way of writing and each target."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--child", choices=["info", "warning"])
    args.add_argument("--lines", type=int, default=LINES)
    args.add_argument("--repeat", type=int, default=3)
    ns = args.parse_args()
    if ns.child:
        _child(ns.child, ns.lines)
        return
    for target in ("devnull", "pipe"):
        for method, how in (("warning", "a write per line"), ("info", "buffered")):
            best = min(_measure(method, target, ns.lines) for _ in range(ns.repeat))
            print(f"log line to {target:7}, {how:16}: {best:6.2f} µs")


if __name__ == "__main__":
    main()
