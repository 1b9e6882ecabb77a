"""Logging, configured once per process: ours and the stdlib's records as the same JSON lines."""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import sys
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, TextIO

import orjson
import structlog

from service.log_output import FLUSH_AFTER_S, Logger, Output, RecordHandler, TextOutput
from service.log_output import stderr_output as _stderr_output

__all__ = ["FLUSH_AFTER_S", "audit_lines", "configure", "processors", "request_line"]
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
_BOUND_PREFIX = structlog.contextvars.STRUCTLOG_KEY_PREFIX  # a bound key's ContextVar name
_BOUND_PREFIX_LEN = len(_BOUND_PREFIX)
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
        self.last = (-1, "")  # the last millisecond and its text

    def __call__(self, _: Any, __: str, event: Event) -> Event:
        event["timestamp"] = self.now()
        return event

    def now(self) -> str:
        """The current time's text; a millisecond's text is reused (several lines share one)."""
        ms = int(time.time() * 1000)
        last, text = self.last
        if ms == last:
            return text
        second, prefix = self.formatted
        if ms // 1000 != second:
            second = ms // 1000
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self.formatted = (second, prefix)
        text = f"{prefix}.{ms % 1000:03d}Z"
        self.last = (ms, text)
        return text


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


class _RequestLine:
    """The per-request line as one JSON line: the fields a structlog call would render.

    The same keys in the same order as `structlog.get_logger("http").info("request", …)`:
    the fields, `event`, the bound context, `level`, `logger`, `timestamp`; secret fields of
    the context redacted (the given fields are the middleware's: method, path, status,
    duration_ms). Built without the processor chain: at ~30 % of the token endpoint's CPU under
    wrk, that chain was its largest single cost (tests/bench/token_endpoint.py --profile).
    """

    __slots__ = ("out", "stamp")

    def __init__(self, out: Output) -> None:
        self.out, self.stamp = out, _Timestamp()

    def __call__(self, fields: Event) -> None:
        fields["event"] = "request"
        # structlog.contextvars.get_contextvars() inlined: one pass, no second dict
        for var, value in contextvars.copy_context().items():
            name = var.name
            if value is not Ellipsis and name.startswith(_BOUND_PREFIX):
                key = name[_BOUND_PREFIX_LEN:]
                if key not in fields:
                    fields[key] = REDACTED if key in SECRET_FIELDS else value
        fields["level"], fields["logger"] = "info", "http"
        fields["timestamp"] = self.stamp.now()
        self.out.record(fields)


def _structlog_request_line(fields: Event) -> None:
    """The request line through structlog (the console format: rendered for people)."""
    structlog.get_logger("http").info("request", **fields)


class _AuditLines:
    """Audit records as JSON lines, a batch at a time: one timestamp for the batch, no chain.

    The records are built by service/audit.py from ids, names and outcomes only (never a
    secret field), so no redaction pass is needed; each line has the keys of a structlog line:
    the record's (never `event`, `level`, `logger` nor `timestamp`), then those four, spliced
    in as bytes after the record's own JSON; the batch is written as one block.
    """

    __slots__ = ("out", "stamp")

    def __init__(self, out: Output) -> None:
        self.out, self.stamp = out, _Timestamp()

    def __call__(self, records: Sequence[Mapping[str, Any]]) -> None:
        tail = orjson.dumps(
            {"event": "audit", "level": "info", "logger": "audit", "timestamp": self.stamp.now()}
        )
        rest, whole = b"," + tail[1:] + b"\n", tail[1:] + b"\n"
        dumps = orjson.dumps
        block = b"".join(
            line[:-1] + (rest if len(line) > 2 else whole)  # b"{}": no comma
            for line in (dumps(record, default=str) for record in records)
        )
        if block:
            self.out.block(block)


def _structlog_audit_lines(records: Sequence[Mapping[str, Any]]) -> None:
    """Audit lines through structlog (the console format)."""
    log = structlog.get_logger("audit")
    for record in records:
        log.info("audit", **record)


def _no_audit_lines(_: Sequence[Mapping[str, Any]]) -> None:
    """The configured level is above INFO."""


@functools.cache
def _audit_lines() -> list[Callable[[Sequence[Mapping[str, Any]]], None]]:
    """The writer of audit lines configure() chose (one per process)."""
    return [_structlog_audit_lines]


def audit_lines(records: Sequence[Mapping[str, Any]]) -> None:
    """Log audit records at INFO, one line each with the event and logger `audit`."""
    _audit_lines()[0](records)


def _no_request_line(_: Event) -> None:
    """The configured level is above INFO."""


@functools.cache
def _request_line() -> list[Callable[[Event], None]]:
    """The writer of the request line configure() chose (one per process)."""
    return [_structlog_request_line]


def request_line(fields: Event) -> None:
    """Log the one line of a request (method, path, status, duration_ms) at INFO."""
    _request_line()[0](fields)


def _dumps_line(value: Any, **_: Any) -> bytes:
    return orjson.dumps(value, default=str, option=orjson.OPT_APPEND_NEWLINE)


def _dumps_text(value: Any, **_: Any) -> str:
    return orjson.dumps(value, default=str).decode()


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
    out: Output
    text_renderer: Any
    if console:
        # plain tracebacks: rich ones print local variables, which may hold secrets
        text_renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    else:
        text_renderer = structlog.processors.JSONRenderer(serializer=_dumps_text)
    if console or stream is not None:
        out, renderer = TextOutput(out_stream), text_renderer
    else:
        out, renderer = _stderr_output(), structlog.processors.JSONRenderer(serializer=_dumps_line)
    structlog.configure(
        processors=[*processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=functools.partial(Logger, out),
        cache_logger_on_first_use=stream is None,  # tests reconfigure with their own stream
    )
    _request_line()[0] = (
        _structlog_request_line
        if console
        else _RequestLine(out)
        if level <= logging.INFO
        else _no_request_line
    )
    _audit_lines()[0] = (
        _structlog_audit_lines
        if console
        else _AuditLines(out)
        if level <= logging.INFO
        else _no_audit_lines
    )
    handler = RecordHandler(out)
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
