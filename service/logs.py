"""structlog configuration, done once per process: JSON lines, or console on a TTY."""

from __future__ import annotations

import atexit
import contextlib
import io
import logging
import os
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, BinaryIO, TextIO, cast

import orjson
import structlog

FLUSH_EVERY_S = 0.2
SECRET_FIELDS = frozenset(
    {
        "accessToken",
        "access_token",
        "refreshToken",
        "refresh_token",
        "clientSecret",
        "client_secret",
        "token",
        "password",
        "authorization",
        "secret",
    }
)


def _redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in SECRET_FIELDS & event.keys():
        event[name] = "[redacted]"
    return event


class _Timestamp:
    """Adds an ISO 8601 UTC timestamp with milliseconds, formatting the seconds once each."""

    def __init__(self) -> None:
        self.second, self.prefix = -1, ""

    def __call__(
        self, _: Any, __: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event["timestamp"] = f"{self.prefix}.{int((now - second) * 1000):03d}Z"
        return event


def _dumps(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str)


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


class _BufferedLines:
    """A byte stream on a dup of fd 2, flushed every FLUSH_EVERY_S and at exit.

    One write system call per log line would cost the token endpoint a sixth of its time.
    """

    def __init__(self, fd: int) -> None:
        self.out = io.BufferedWriter(io.FileIO(os.dup(fd), "wb"), buffer_size=1 << 16)
        atexit.register(self.drain)
        threading.Thread(target=self._flusher, name="log-flush", daemon=True).start()

    def write(self, data: bytes) -> None:
        self.out.write(data)

    def flush(self) -> None:
        """Called by structlog after every line: left to the flusher thread."""

    def drain(self) -> None:
        """Write out what is buffered."""
        with contextlib.suppress(OSError, ValueError):  # closed at interpreter exit
            self.out.flush()

    def _flusher(self) -> None:
        while True:
            time.sleep(FLUSH_EVERY_S)
            self.drain()


def configure(
    log_format: str = "auto", stream: TextIO | None = None, level: int = logging.INFO
) -> None:
    """Configure structlog and the standard logging bridge for this process.

    JSON lines go to `stream` when given (tests), else to a buffered stderr.
    """
    out = stream or sys.stderr
    console = log_format == "console" or (log_format == "auto" and out.isatty())
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _Timestamp(),
        _redact,
        structlog.processors.format_exc_info,
    ]
    factory: Any
    if console:
        # plain tracebacks: rich ones print local variables, which may hold secrets
        processors.append(
            structlog.dev.ConsoleRenderer(
                colors=False, exception_formatter=structlog.dev.plain_traceback
            )
        )
        factory = structlog.PrintLoggerFactory(out)
    elif stream is not None:
        processors.append(structlog.processors.JSONRenderer(serializer=_dumps_text))
        factory = structlog.PrintLoggerFactory(out)
    else:
        processors.append(structlog.processors.JSONRenderer(serializer=_dumps))
        factory = structlog.BytesLoggerFactory(cast(BinaryIO, _BufferedLines(sys.stderr.fileno())))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=factory,
        cache_logger_on_first_use=stream is None,  # tests reconfigure with their own stream
    )
    logging.basicConfig(level=logging.WARNING, stream=out, force=True)
