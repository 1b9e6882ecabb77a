"""Where log lines go: a text stream, or a buffered stderr the event loop writes out."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import io
import logging
import os
import signal
import sys
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any, TextIO

import orjson

# Lines on stderr are written by the event loop at most this long after they were logged;
# WARNING and above, lines logged outside an event loop and stdlib records at once.
FLUSH_AFTER_S = 0.05


class TextOutput:
    """A text stream (a terminal, a test's buffer): each line written and flushed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def line(self, data: Any) -> None:
        """A line structlog rendered (text)."""
        self.text(data)

    def record(self, event: Mapping[str, Any]) -> None:
        """One JSON line built without structlog's processors (the per-request line)."""
        self.text(orjson.dumps(event, default=str).decode())

    def block(self, lines: bytes) -> None:
        """Complete JSON lines (UTF-8, each ending in a newline), written and flushed at once."""
        with self.lock:
            self.stream.write(lines.decode())
            self.stream.flush()

    def text(self, line: str) -> None:
        """Write and flush one line."""
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def flush(self) -> None:
        """Each line is flushed as it is written."""


class StderrOutput:
    """Bytes into a 64 KiB buffer on a dup of fd 2, written out by the event loop.

    The token endpoint logs a line per request. Per line, with tests/bench/log_lines.py
    (configure(), the request line 100k times in a running loop, best of 5, 2 shared vCPUs):
    to a pipe 8.4 to 12.5 µs written at once against 5.5 µs buffered, to /dev/null 6.7
    against 5.5 µs; a token request answered from the cache costs ~55 µs. So the buffer
    stays, without a thread: the loop writes it out; WARNING and above are written at once;
    normal exit, atexit and SIGTERM (when the process does not handle it) write the rest.
    SIGKILL can lose the INFO lines of the last FLUSH_AFTER_S.
    """

    def __init__(self, fd: int) -> None:
        self.out = io.BufferedWriter(io.FileIO(os.dup(fd), "wb"), buffer_size=1 << 16)
        self.loop: asyncio.AbstractEventLoop | None = None  # where a flush is scheduled
        atexit.register(self.flush)

    def line(self, data: bytes) -> None:
        """Buffer one rendered line; the running loop (or, without one, this call) writes it."""
        self.out.write(data)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to flush later: now
            self.flush()
            return
        if loop is not self.loop:
            self.loop = loop
            loop.call_later(FLUSH_AFTER_S, self._flush_scheduled)

    def text(self, line: str) -> None:
        """A stdlib record's text line."""
        self.line(line.encode("utf-8", "backslashreplace") + b"\n")

    def record(self, event: Mapping[str, Any]) -> None:
        """One JSON line built without structlog's processors (the per-request line)."""
        self.line(orjson.dumps(event, default=str, option=orjson.OPT_APPEND_NEWLINE))

    def block(self, lines: bytes) -> None:
        """Complete JSON lines (each ending in a newline), buffered like one line."""
        self.line(lines)

    def _flush_scheduled(self) -> None:
        self.loop = None
        self.flush()

    def flush(self) -> None:
        """Write out what is buffered."""
        with contextlib.suppress(OSError, ValueError):  # a closed pipe; at interpreter exit
            self.out.flush()

    def flush_on_sigterm(self) -> None:
        """Flush before SIGTERM's default action, unless the process already handles it."""
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def flush_and_die(signum: int, _: FrameType | None) -> None:
            self.flush()
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)

        signal.signal(signal.SIGTERM, flush_and_die)


Output = TextOutput | StderrOutput  # `line`: what the renderer made; `text`: stdlib lines


class Logger:
    """structlog's final logger: it has a name, and writes WARNING and above through at once."""

    __slots__ = ("name", "out")

    def __init__(self, out: Output, name: str | None = None) -> None:
        self.out, self.name = out, name

    def msg(self, data: Any) -> None:
        """Below WARNING: buffered."""
        self.out.line(data)

    def urgent(self, data: Any) -> None:
        """WARNING and above: written at once."""
        self.out.line(data)
        self.out.flush()

    debug = info = log = msg
    warn = warning = error = err = critical = exception = fatal = failure = urgent


class RecordHandler(logging.Handler):
    """The root handler: stdlib records rendered by structlog into the same output."""

    def __init__(self, out: Output) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        """Render `record` into the output; WARNING and above written at once."""
        try:
            self.out.text(self.format(record))
            if record.levelno >= logging.WARNING:
                self.out.flush()
        except Exception:
            self.handleError(record)


@functools.cache
def stderr_output() -> StderrOutput:
    """The one buffered stderr of this process."""
    out = StderrOutput(sys.stderr.fileno())
    out.flush_on_sigterm()
    return out
