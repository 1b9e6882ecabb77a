"""Traces of a running web and worker, collected by an OTLP/HTTP receiver on loopback.

The processes run with OTEL_EXPORTER_OTLP_ENDPOINT pointing at the receiver (tests/support/
otlp.py decodes the protobuf export requests); the provider is the real test IdP, which
records the `traceparent` of every refresh, and a webhook receiver records its own.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from service.config import Config, ConfigError
from service.store.embedded import free_port
from service.tracing import Tracing, trace_configs
from service.webhooks.secrets import WebhookSecrets
from tests.support.broker import SECRET_B64, Broker, running_broker
from tests.support.idp import Idp
from tests.support.otlp import OtlpReceiver, ReceivedSpan, traceparent_ids
from tests.support.processes import now_ms

TOKEN_ROUTE = "GET /v1/account/{account}/oauth-token"
HOUR_MS = 3_600_000


@dataclass
class HookReceiver:
    """A webhook receiver that answers 204 and keeps each request's `traceparent`."""

    port: int = field(default_factory=free_port)
    traceparents: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        """Record the traceparent; 204."""
        self.traceparents.append(request.headers.get("traceparent", ""))
        return web.Response(status=204)

    async def start(self) -> None:
        """Listen on loopback."""
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()


@pytest.fixture
async def collectors() -> AsyncIterator[tuple[OtlpReceiver, HookReceiver]]:
    """The OTLP receiver and the webhook receiver, stopped after the test."""
    otlp, hooks = OtlpReceiver(), HookReceiver()
    await otlp.start()
    await hooks.start()
    yield otlp, hooks
    await otlp.stop()
    if hooks.runner is not None:
        await hooks.runner.cleanup()


def test_tracing_off_costs_one_shared_no_op_span() -> None:
    """Without an endpoint every span is the same no-op object and no HTTP hook is installed."""
    config = Config(redis_url="redis://127.0.0.1:1", secret_key=bytes(32))
    tracing = Tracing.from_config(config)
    assert not tracing.enabled
    assert tracing.span("a") is tracing.span("b") is tracing.server_span("c", {})
    with tracing.span("a") as span:
        span.set_attribute("account.id", "x")
    assert trace_configs(config) == []
    tracing.shutdown()


def _in_memory() -> tuple[Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return Tracing(provider), exporter


def test_an_unsampled_caller_gets_no_child_spans() -> None:
    """Under a traceparent whose sampled flag is off, spans are the shared no-op (nothing sent)."""
    tracing, exporter = _in_memory()
    trace_id, span_id = _incoming()
    with tracing.server_span("GET /x", {"traceparent": f"00-{trace_id}-{span_id}-00"}):
        assert tracing.span("auth") is tracing.span("cache")
        tracing.child_at("claim", 1, 2)
    assert exporter.get_finished_spans() == ()


def test_a_failed_span_names_only_the_exception_type() -> None:
    """A span whose block raises is an error described by the exception's type, not its text."""
    tracing, exporter = _in_memory()
    with pytest.raises(ValueError, match="sk-secret"), tracing.span("refresh"):
        raise ValueError("sk-secret")
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError"
    assert not span.events


def test_only_the_http_protobuf_protocol_is_accepted() -> None:
    """OTEL_EXPORTER_OTLP_PROTOCOL=grpc is refused at start with a message naming it."""
    env = {"REDIS_URL": "redis://127.0.0.1:1", "TOKENBROKER_SECRET": SECRET_B64}
    assert Config.from_env({**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"})
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL"):
        Config.from_env({**env, "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})


def _incoming() -> tuple[str, str]:
    """A caller's trace id and span id (hex)."""
    return secrets.token_hex(16), secrets.token_hex(8)


async def _secrets_of(broker: Broker, ids: list[str]) -> set[str]:
    """Every token the accounts hold now, and the credentials of the app and the API."""
    found = {broker.api_token, broker.idp.client_secret, SECRET_B64}
    for account in (await broker.accounts(ids)).values():
        found.add(broker.core.accounts.refresh_token(account))
        if account.encrypted_access is not None:
            found.add(broker.core.accounts.access_token(account))
    return {s for s in found if s}


async def _token(broker: Broker, account: str, traceparent: str, min_validity: int) -> None:
    headers = {"Authorization": f"Bearer {broker.api_token}", "traceparent": traceparent}
    url = f"{broker.base_url}/v1/account/{account}/oauth-token?minValidity={min_validity}"
    async with broker.http.get(url, headers=headers) as response:
        assert response.status == 200, await response.text()


def _descendant_names(otlp: OtlpReceiver, root: ReceivedSpan) -> set[str]:
    names, todo = set(), [root]
    while todo:
        children = otlp.children(todo.pop())
        names |= {c.name for c in children}
        todo += children
    return names


@pytest.mark.timeout(90)
async def test_web_and_worker_send_linked_spans_without_secrets(
    tmp_path: Path, idp: Idp, collectors: tuple[OtlpReceiver, HookReceiver]
) -> None:
    """Token requests, a worker refresh and webhook attempts arrive as linked, secret-free spans.

    The token request's span is the child of the caller's traceparent; the provider and the
    webhook receiver get the traceparent of the span that called them.
    """
    otlp, hooks = collectors
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
        "OTEL_SERVICE_NAME": "tokenbroker-test",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # the SDK's batch delay, so that spans come soon
    }
    async with running_broker(tmp_path, idp, **env) as broker:
        core = broker.core
        await core.settings.update({"webhooks": f"http://127.0.0.1:{hooks.port}/hooks"})
        await core.settings.update({"webhooksEnabled": True})
        webhook_secret = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(now_ms())
        ids = ["cached", "stale", "due"]
        await broker.import_accounts(["cached"], valid_ms=HOUR_MS, lifetime_ms=HOUR_MS)
        await broker.import_accounts(
            ["stale"], valid_ms=30_000, lifetime_ms=HOUR_MS, due_in_ms=HOUR_MS
        )
        await broker.import_accounts(["due"], valid_ms=20_000, lifetime_ms=HOUR_MS, due_in_ms=0)
        before = await _secrets_of(broker, ids)
        await broker.start_web()
        cached_trace, stale_trace = _incoming(), _incoming()
        await _token(broker, "cached", f"00-{cached_trace[0]}-{cached_trace[1]}-01", 0)
        await _token(broker, "stale", f"00-{stale_trace[0]}-{stale_trace[1]}-01", 60)
        broker.spawn_worker("worker")

        def arrived() -> bool:
            workers = otlp.named("worker refresh")
            return (
                len(otlp.named(TOKEN_ROUTE)) >= 2
                and len(otlp.named("webhook attempt")) >= len(ids)
                and len(hooks.traceparents) >= len(ids)
                and any(s.attributes.get("account.id") == "due" for s in workers)
            )

        await broker.wait_until(arrived, "the spans of every unit of work", 30)
        after = await _secrets_of(broker, ids)
        broker.core.tracing.shutdown()  # the test's own core read the same environment

    requests = {s.trace_id: s for s in otlp.named(TOKEN_ROUTE)}
    for trace_id, caller in (cached_trace, stale_trace):
        span = requests[trace_id]
        assert span.parent_id == caller
        assert span.attributes["request.id"]
        assert span.attributes["http.response.status_code"] == 200
        assert span.service == "tokenbroker-test"
    cached, stale = requests[cached_trace[0]], requests[stale_trace[0]]
    assert cached.attributes["account.id"] == "cached"
    assert otlp.child_names(cached) == {"auth", "cache"}
    assert otlp.child_names(stale) == {"auth", "cache", "refresh"}
    (on_demand,) = [s for s in otlp.children(stale) if s.name == "refresh"]
    assert otlp.child_names(on_demand) == {"lock", "provider call", "store"}
    (web_call,) = [s for s in otlp.children(on_demand) if s.name == "provider call"]

    (worker,) = [s for s in otlp.named("worker refresh") if s.attributes["account.id"] == "due"]
    assert worker.parent_id == ""
    assert otlp.child_names(worker) == {"claim", "lock", "provider call", "store"}
    (worker_call,) = [s for s in otlp.children(worker) if s.name == "provider call"]
    assert worker_call.attributes["refresh.result"] == "granted"
    assert [traceparent_ids(h) for h in idp.traceparents()] == [web_call.ids, worker_call.ids]

    attempts = otlp.named("webhook attempt")
    assert {s.attributes["account.id"] for s in attempts} == set(ids)
    assert {s.attributes["webhook.outcome"] for s in attempts} == {"delivered"}
    assert sorted(map(traceparent_ids, hooks.traceparents)) == sorted(s.ids for s in attempts)

    forbidden = before | after | {webhook_secret}
    assert len(forbidden) >= 8  # three accounts' tokens before and after, and credentials
    for span in otlp.spans:
        for key, value in span.attributes.items():
            assert not any(s in str(value) for s in forbidden), f"{span.name}: {key}"
    assert any(b"stale" in body for body in otlp.bodies)  # the raw bodies are searchable
    for body in otlp.bodies:
        assert not any(s.encode() in body for s in forbidden)
