"""Log lines in tests: the rendered JSON lines of this process, and a child process that logs.

In-process tests that look at event dicts use structlog.testing.capture_logs; the helpers here
are for what capture_logs cannot show: the rendered lines (secrets must not reach them) and
stdlib records, which reach the output through logging, not through structlog's processors.
Run as `python -m tests.support.logs MODE`, this module is the child of the process tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import structlog

from service import logs

ROOT = Path(__file__).resolve().parents[2]
READY = "logged"  # what the child prints on stdout once it has logged


@dataclass
class Lines:
    """The JSON lines written while a `logged_lines` block runs."""

    buffer: io.StringIO = field(default_factory=io.StringIO)

    @property
    def text(self) -> str:
        """Everything written, as one text."""
        return self.buffer.getvalue()

    def all(self) -> list[dict[str, Any]]:
        """Every line, parsed (each must be one JSON object)."""
        return [orjson.loads(line) for line in self.text.splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        """The lines whose event is `name`."""
        return [line for line in self.all() if line.get("event") == name]


@contextlib.contextmanager
def logged_lines(log_format: str = "json") -> Iterator[Lines]:
    """Our and the stdlib's lines rendered into a buffer while the block runs."""
    lines = Lines()
    logs.configure(log_format, stream=lines.buffer)
    try:
        yield lines
    finally:
        logs.configure("json", stream=sys.stderr)


def start_child(mode: str, stderr: Path) -> subprocess.Popen[str]:
    """Start `python -m tests.support.logs MODE`, its stderr (the log) into the file `stderr`."""
    with stderr.open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.logs", mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )


def lines_of(path: Path) -> list[dict[str, Any]]:
    """The JSON lines in the file `path`."""
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def _child(mode: str) -> None:
    """Log as `mode` says, print READY, then exit, block the loop or wait for stdin."""
    log = structlog.get_logger("child")
    if mode == "warning":
        log.warning("warned")
    elif mode == "stdlib-warning":
        logging.getLogger("redis.connection").warning("redis warned")
    elif mode == "request-line":
        logs.request_line({"method": "GET", "path": "/health", "status": 200, "duration_ms": 0.5})
    else:
        log.info("informed")
    if mode == "exit":
        return
    print(READY, flush=True)
    if mode in ("loop-runs", "request-line"):  # the loop keeps running while stdin is open
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    else:  # the loop is blocked: nothing it schedules runs
        sys.stdin.readline()


def main() -> None:
    """The child: configure logs as the service does (stderr, JSON) and run `_child`."""
    logs.configure("json")
    asyncio.run(_child(sys.argv[1]))


if __name__ == "__main__":
    main()
