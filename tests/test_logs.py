"""Log lines: stdlib records as our JSON lines, logger names, redaction, when lines are written."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import io
import logging
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from service import logs
from tests.support.logs import READY, Lines, lines_of, logged_lines, start_child
from tests.support.polling import eventually_blocking

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
SECRET = "s3cr3t-Zq8vLw2"
CHILD_TIMEOUT_S = 15.0


@pytest.fixture
def lines() -> Iterator[Lines]:
    """Our and the stdlib's lines rendered as JSON into a buffer; logger levels restored."""
    names = ("aiohttp.access", "aiohttp.server", "redis.connection", "asyncio")
    levels = {name: logging.getLogger(name).level for name in names}
    with logged_lines() as captured:
        yield captured
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture
def child(tmp_path: Path) -> Iterator[Any]:
    """Start a child process that logs (tests.support.logs); it is killed if still running."""
    started: list[subprocess.Popen[str]] = []

    def start(mode: str) -> tuple[subprocess.Popen[str], Path]:
        log = tmp_path / f"{mode}.log"
        started.append(start_child(mode, log))
        return started[-1], log

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def _ready(proc: subprocess.Popen[str]) -> None:
    """Wait for the child to say it has logged."""
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == READY, f"the child exited with {proc.wait()}"


def test_stdlib_records_are_json_lines(lines: Lines) -> None:
    """Records of aiohttp and redis-py come out as one JSON line with level, logger, time."""
    logging.getLogger("aiohttp.access").warning("GET /v1/x %s", 200)
    logging.getLogger("redis.connection").warning("connection lost")
    access, redis = lines.all()
    assert access["event"] == "GET /v1/x 200" and redis["event"] == "connection lost"
    for line, name in ((access, "aiohttp.access"), (redis, "redis.connection")):
        assert line["level"] == "warning" and line["logger"] == name, line
        assert TIMESTAMP.fullmatch(line["timestamp"]), line


def test_third_party_info_only_when_configured(lines: Lines) -> None:
    """Stdlib loggers log from WARNING on; one given its own level logs from that level."""
    access = logging.getLogger("aiohttp.access")
    access.info("dropped")
    access.setLevel(logging.INFO)
    access.info("kept")
    assert [line["event"] for line in lines.all()] == ["kept"]


def test_stdlib_bound_context_reaches_the_line(lines: Lines) -> None:
    """A stdlib record logged while a request id is bound carries it, like our own lines."""
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        logging.getLogger("aiohttp.server").warning("slow")
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    assert lines.all()[0]["request_id"] == "r-1"


def test_logger_names_reach_the_line() -> None:
    """The name given to structlog.get_logger is the line's `logger`; the two loops differ."""
    with logged_lines(), capture_logs(processors=logs.processors()) as captured:
        structlog.get_logger("worker.refresh").info("tick")
        structlog.get_logger("worker.webhooks").info("tick")
    assert [line["logger"] for line in captured] == ["worker.refresh", "worker.webhooks"]
    assert all(line["level"] == "info" for line in captured)


def test_stdlib_secrets_are_redacted(lines: Lines) -> None:
    """A secret in a stdlib record's extra, a nested header or its message is redacted."""
    client = logging.getLogger("aiohttp.client")
    client.warning(
        "sent Authorization: Bearer %s to redis://user:%s@host/0",
        SECRET,
        SECRET,
        extra={"authorization": SECRET, "headers": {"Authorization": f"Bearer {SECRET}"}},
    )
    (line,) = lines.all()
    assert line["authorization"] == "[redacted]", line
    assert line["headers"] == {"Authorization": "[redacted]"}, line
    assert "Bearer [redacted]" in line["event"] and ":[redacted]@host" in line["event"], line
    assert SECRET not in lines.text


def test_our_secret_fields_are_redacted() -> None:
    """A secret field on one of our lines is redacted before it is rendered."""
    with logged_lines(), capture_logs(processors=logs.processors()) as captured:
        structlog.get_logger("refresh").info("refreshed", refresh_token=SECRET, account="a")
    assert captured[0]["refresh_token"] == "[redacted]" and captured[0]["account"] == "a"


def _raise_holding(secret: str) -> None:
    raise RuntimeError(f"failed with Bearer {secret}")


def test_credentials_in_our_traceback_are_redacted(lines: Lines) -> None:
    """A credential in the message of an exception we log is redacted in its traceback."""
    try:
        _raise_holding(SECRET)
    except RuntimeError:
        structlog.get_logger("http").exception("unhandled_error")
    (line,) = lines.events("unhandled_error")
    assert "Bearer [redacted]" in line["exception"] and SECRET not in lines.text, line


def test_stdlib_exception_is_one_line_with_its_traceback(lines: Lines) -> None:
    """An aiohttp.server error, an unretrieved task exception: one JSON line with traceback."""
    try:
        _raise_holding(SECRET)
    except RuntimeError:
        logging.getLogger("aiohttp.server").exception("Error handling request")

    async def fails() -> None:
        _raise_holding(SECRET)

    loop = asyncio.new_event_loop()
    try:
        task = loop.create_task(fails())
        loop.run_until_complete(asyncio.wait([task]))
        del task
        gc.collect()  # the task's finalizer reports the exception nobody retrieved
    finally:
        loop.close()
    server, task_line = lines.all()
    assert server["logger"] == "aiohttp.server" and server["level"] == "error", server
    assert task_line["logger"] == "asyncio" and task_line["level"] == "error", task_line
    assert task_line["event"].startswith("Task exception was never retrieved"), task_line
    for line in (server, task_line):
        assert "Traceback" in line["exception"] and "_raise_holding" in line["exception"], line
    assert SECRET not in lines.text


def test_lines_are_written_at_normal_exit(child: Any) -> None:
    """A process that logs in its event loop and exits at once has written its line."""
    proc, log = child("exit")
    assert proc.wait(CHILD_TIMEOUT_S) == 0
    (line,) = lines_of(log)
    assert line["event"] == "informed" and line["logger"] == "child", line


@pytest.mark.parametrize(
    ("mode", "event"), [("warning", "warned"), ("stdlib-warning", "redis warned")]
)
def test_warning_is_visible_at_once(child: Any, mode: str, event: str) -> None:
    """A WARNING line (ours or the stdlib's) is written before the process goes on."""
    proc, log = child(mode)
    _ready(proc)  # the child now blocks its loop: nothing scheduled could write the line
    assert [line["event"] for line in lines_of(log)] == [event]
    assert proc.poll() is None, "read before the child exited"


def test_info_lines_are_written_by_the_running_loop(child: Any) -> None:
    """An INFO line is written by the event loop soon after, while the process runs on."""
    proc, log = child("loop-runs")
    _ready(proc)
    eventually_blocking(
        lambda: bool(log.read_bytes()),
        CHILD_TIMEOUT_S,
        "the INFO line written",
        every_s=logs.FLUSH_AFTER_S / 5,
    )
    assert [line["event"] for line in lines_of(log)] == ["informed"]
    assert proc.poll() is None, "read before the child exited"


def test_request_line_is_written_by_the_running_loop(child: Any) -> None:
    """The request line goes through the buffered stderr too, written by the running loop."""
    proc, log = child("request-line")
    _ready(proc)
    eventually_blocking(
        lambda: bool(log.read_bytes()),
        CHILD_TIMEOUT_S,
        "the request line written",
        every_s=logs.FLUSH_AFTER_S / 5,
    )
    (line,) = lines_of(log)
    assert line["event"] == "request" and line["logger"] == "http", line
    assert line["path"] == "/health" and line["level"] == "info", line
    assert proc.poll() is None, "read before the child exited"


def test_sigterm_writes_buffered_lines(child: Any) -> None:
    """SIGTERM to a process that does not handle it writes the buffered lines, then ends it."""
    proc, log = child("blocked")
    _ready(proc)  # its loop is blocked: the line is still in the buffer
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(CHILD_TIMEOUT_S) == -signal.SIGTERM
    assert [line["event"] for line in lines_of(log)] == ["informed"]


REQUEST: dict[str, Any] = {"method": "GET", "path": "/v1/account/alpha/oauth-token", "status": 200}


@contextlib.contextmanager
def _bound(**context: Any) -> Iterator[None]:
    structlog.contextvars.bind_contextvars(**context)
    try:
        yield
    finally:
        structlog.contextvars.unbind_contextvars(*context)


def test_request_line_is_the_line_structlog_renders(lines: Lines) -> None:
    """The request line has the keys, order and values of structlog's line but the time."""
    with _bound(request_id="f3a9c1d2-2a", account="alpha"):
        logs.request_line({**REQUEST, "duration_ms": 1.25})
        structlog.get_logger("http").info("request", **REQUEST, duration_ms=1.25)
    direct, rendered = lines.all()
    assert TIMESTAMP.fullmatch(direct.pop("timestamp")), direct
    assert TIMESTAMP.fullmatch(rendered.pop("timestamp")), rendered
    assert list(direct.items()) == list(rendered.items())
    assert direct["request_id"] == "f3a9c1d2-2a" and direct["account"] == "alpha", direct


def test_request_line_redacts_secret_context(lines: Lines) -> None:
    """A secret-named field bound to the context is redacted on the request line as well."""
    with _bound(token=SECRET):
        logs.request_line(dict(REQUEST))
    (line,) = lines.all()
    assert line["token"] == "[redacted]" and SECRET not in lines.text, line


def test_request_line_follows_the_level() -> None:
    """Above INFO there is no request line; the console format renders it for people."""
    buffer = io.StringIO()
    try:
        logs.configure("json", stream=buffer, level=logging.WARNING)
        logs.request_line(dict(REQUEST))
        assert buffer.getvalue() == ""
        with logged_lines("console") as console:
            logs.request_line(dict(REQUEST))
        assert "request" in console.text and REQUEST["path"] in console.text, console.text
    finally:
        logs.configure("json", stream=sys.stderr)
