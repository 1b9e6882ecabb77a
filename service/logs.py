"""Logging, configured once per process: ours and the stdlib's records as the same JSON lines."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import io
import logging
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Mapping, MutableMapping
from types import FrameType
from typing import Any, TextIO

import orjson
import structlog

# Lines on stderr are written by the event loop at most this long after they were logged;
# WARNING and above, lines logged outside an event loop and stdlib records at once.
FLUSH_AFTER_S = 0.05
SECRET_FIELDS = frozenset(
    {
        "accessToken",
        "access_token",
        "refreshToken",
        "refresh_token",
        "clientSecret",
        "client_secret",
        "client_assertion",
        "clientCertificateKey",
        "nextClientSecret",
        "nextClientCertificateKey",
        "serviceKey",
        "token",
        "password",
        "authorization",
        "secret",
    }
)
REDACTED = "[redacted]"
_SECRET_NAMES = frozenset(name.lower() for name in SECRET_FIELDS)
# In the text of a stdlib record: a secret field's value (`token=…`, `"password": "…"`,
# `Authorization: Bearer …`), a bare `Bearer …`/`Basic …` credential, a URL's password.
_SECRET_NAMES_RE = "|".join(sorted(map(re.escape, SECRET_FIELDS)))
_SECRET_TEXT = re.compile(
    r"(?i)(\b(?:" + _SECRET_NAMES_RE + r")[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?)"
    r"[^\s\"'&,;}]+"
    r"|(\b(?:bearer|basic)\s+)[\w.~+/=-]+"
    r"|(://[^/\s:@]*:)[^/\s@]+(?=@)"
)

Event = MutableMapping[str, Any]


def _redact(_: Any, __: str, event: Event) -> Event:
    for name in SECRET_FIELDS & event.keys():
        event[name] = REDACTED
    return event


def _add_logger_name(logger: Any, _: str, event: Event) -> Event:
    """`logger`: the stdlib record's logger name, or the one given to structlog.get_logger."""
    record = event.get("_record")
    name = record.name if record is not None else getattr(logger, "name", None)
    if name:
        event["logger"] = name
    return event


def _scrub_text(text: str) -> str:
    return _SECRET_TEXT.sub(lambda m: (m[1] or m[2] or m[3]) + REDACTED, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, Mapping):
        return {k: _scrub_field(str(k), v) for k, v in value.items()}
    return value


def _scrub_exception(_: Any, __: str, event: Event) -> Event:
    """Credentials in a rendered traceback (rare: one lookup a line otherwise)."""
    text = event.get("exception")
    if text:
        event["exception"] = _scrub_text(text)
    return event


def _scrub_field(name: str, value: Any) -> Any:
    return REDACTED if name.lower() in _SECRET_NAMES else _scrub(value)


def _scrub_foreign(_: Any, __: str, event: Event) -> Event:
    """Stdlib records: secret fields at any depth, credentials in texts (message, traceback)."""
    for name, value in event.items():
        event[name] = _scrub_field(name, value)
    return event


class _Timestamp:
    """Adds an ISO 8601 UTC timestamp with milliseconds, formatting the seconds once each.

    Kept instead of structlog's TimeStamper(fmt="iso", utc=True), which builds and formats a
    datetime on every line: 1.6 µs a line against 0.7 µs (timeit, best of 7 runs of 100k, 2
    shared vCPUs), 8.8 against 7.7 µs for the whole request line (median of 8 runs): a fifth
    of what the line costs, 2 % of a token request answered from the cache (~55 µs, see "The
    hot path" in docs/architecture.md), for 15 lines of code.
    """

    def __init__(self) -> None:
        self.formatted = (-1, "")  # one tuple: threads never see a second with another's text

    def __call__(self, _: Any, __: str, event: Event) -> Event:
        now = time.time()
        second, prefix = self.formatted
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.formatted = (second, prefix)
        event["timestamp"] = f"{prefix}.{int((now - second) * 1000):03d}Z"
        return event


def processors() -> list[Any]:
    """The processors every line passes through before it is rendered, ours and stdlib's."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _add_logger_name,
        _Timestamp(),
        _redact,
        structlog.processors.format_exc_info,
        _scrub_exception,
    ]


class _TextOutput:
    """A text stream (a terminal, a test's buffer): each line written and flushed."""

    def __init__(self, stream: TextIO) -> None:
        self.stream, self.lock = stream, threading.Lock()

    def line(self, data: Any) -> None:
        self.text(data)

    def text(self, line: str) -> None:
        with self.lock:
            self.stream.write(line + "\n")
            self.stream.flush()

    def flush(self) -> None:
        """Each line is flushed as it is written."""


class _StderrOutput:
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
        self.line(line.encode("utf-8", "backslashreplace") + b"\n")

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


_Output = _TextOutput | _StderrOutput  # `line`: what the renderer made; `text`: stdlib lines


class _Logger:
    """structlog's final logger: it has a name, and writes WARNING and above through at once."""

    __slots__ = ("name", "out")

    def __init__(self, out: _Output, name: str | None = None) -> None:
        self.out, self.name = out, name

    def msg(self, data: Any) -> None:
        self.out.line(data)

    def urgent(self, data: Any) -> None:
        self.out.line(data)
        self.out.flush()

    debug = info = log = msg
    warn = warning = error = err = critical = exception = fatal = failure = urgent


class _RecordHandler(logging.Handler):
    """The root handler: stdlib records rendered by structlog into the same output."""

    def __init__(self, out: _Output) -> None:
        super().__init__()
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.out.text(self.format(record))
            if record.levelno >= logging.WARNING:
                self.out.flush()
        except Exception:
            self.handleError(record)


def _dumps_line(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_APPEND_NEWLINE)


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


@functools.cache
def _stderr_output() -> _StderrOutput:
    """The one buffered stderr of this process."""
    out = _StderrOutput(sys.stderr.fileno())
    out.flush_on_sigterm()
    return out


def configure(
    log_format: str = "auto",
    stream: TextIO | None = None,
    level: int = logging.INFO,
    stdlib_level: int = logging.WARNING,
) -> None:
    """Configure structlog, and stdlib logging to render through it, for this process.

    JSON lines go to `stream` when given (tests), else to a buffered stderr. Stdlib loggers
    (aiohttp, redis, asyncio…) log from `stdlib_level` on, unless given a level of their own.
    """
    out_stream = stream or sys.stderr
    console = log_format == "console" or (log_format == "auto" and out_stream.isatty())
    out: _Output
    text_renderer: Any
    if console:
        # plain tracebacks: rich ones print local variables, which may hold secrets
        text_renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        text_renderer = structlog.processors.JSONRenderer(serializer=_dumps_text)
    if console or stream is not None:
        out, renderer = _TextOutput(out_stream), text_renderer
    else:
        out, renderer = _stderr_output(), structlog.processors.JSONRenderer(serializer=_dumps_line)
    structlog.configure(
        processors=[*processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=functools.partial(_Logger, out),
        cache_logger_on_first_use=stream is None,  # tests reconfigure with their own stream
    )
    handler = _RecordHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *processors(), _scrub_foreign],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, text_renderer],
        )
    )
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(stdlib_level)
