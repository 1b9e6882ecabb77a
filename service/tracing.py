"""OpenTelemetry traces: off unless OTEL_EXPORTER_OTLP_ENDPOINT is set; every span starts here.

Off, `Tracing.span` hands back one no-op span made at start-up (nothing is allocated per
call) and no HTTP hook is installed. On, spans go to the OTLP/HTTP collector in batches; a
W3C `traceparent` received with a request is the parent of its span, and every outbound
call (providers, webhook receivers) carries the current span's `traceparent`.

Attributes are set by name in the callers: request ids, account and app ids, routes, status
codes, outcomes — never a token, a secret or an error message from outside.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Protocol

import aiohttp
from opentelemetry import context as otel_context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import (
    Span as OtelSpan,
)
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from service.config import Config

Attribute = str | int | float | bool
TRACES_PATH = "/v1/traces"


class Span(Protocol):
    """What callers do with a span: name facts about the unit of work."""

    def set_attribute(self, key: str, value: Attribute) -> None:
        """Set one attribute (a no-op when tracing is off)."""


class _NoSpan:
    """The span of a process that does not trace: one instance, reused, doing nothing."""

    def set_attribute(self, key: str, value: Attribute) -> None:
        """Do nothing."""

    def __enter__(self) -> _NoSpan:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class _LiveSpan:
    """A started span made current while the block runs, then ended.

    A failure marks it as an error naming only the exception's type: an exception's text may
    quote what a span must not carry.
    """

    __slots__ = ("span", "token")

    def __init__(self, span: OtelSpan) -> None:
        self.span = span
        self.token: object = None

    def __enter__(self) -> OtelSpan:
        self.token = otel_context.attach(set_span_in_context(self.span))
        return self.span

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        if kind is not None:
            self.span.set_status(Status(StatusCode.ERROR, kind.__name__))
        otel_context.detach(self.token)  # type: ignore[arg-type]
        self.span.end()


def _unsampled_parent() -> bool:
    """Whether the current span is a real one that is not being recorded (not sampled)."""
    current = get_current_span()
    return current.get_span_context().is_valid and not current.is_recording()


class Tracing:
    """Starts spans when on; when off, every method is a constant-time no-op."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer: Tracer | None = provider.get_tracer("tokenbroker") if provider else None
        self._propagator = TraceContextTextMapPropagator()
        self._off = _NoSpan()

    @classmethod
    def from_config(cls, config: Config) -> Tracing:
        """Off without an endpoint; else a batching OTLP/HTTP exporter to `<endpoint>/v1/traces`."""
        if config.otel_endpoint is None:
            return cls()
        resource = Resource.create(
            {"service.name": config.otel_service_name, "service.instance.id": secrets.token_hex(8)}
        )
        provider = TracerProvider(resource=resource)
        exporter = OTLPSpanExporter(endpoint=config.otel_endpoint + TRACES_PATH)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    def span(
        self, name: str, *, start_ns: int | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """A child of the current span (a root when there is none), current while open.

        Under a span that is not sampled, no child is made: it would not be recorded either.
        """
        if self._tracer is None or _unsampled_parent():
            return self._off
        return _LiveSpan(self._tracer.start_span(name, start_time=start_ns))

    def server_span(
        self, name: str, headers: Mapping[str, str]
    ) -> contextlib.AbstractContextManager[Span]:
        """The span of an incoming request: the child of its `traceparent`, when it has one."""
        if self._tracer is None:
            return self._off
        parent = self._propagator.extract(headers)
        return _LiveSpan(self._tracer.start_span(name, parent, SpanKind.SERVER))

    def child_at(self, name: str, start_ns: int, end_ns: int) -> None:
        """A finished child of the current span that covered [start_ns, end_ns] (e.g. a claim)."""
        if self._tracer is not None and start_ns and not _unsampled_parent():
            self._tracer.start_span(name, start_time=start_ns).end(end_time=end_ns)

    def shutdown(self) -> None:
        """Send the spans still buffered, then stop the exporter (a no-op when off)."""
        if self.provider is not None:
            self.provider.shutdown()


def trace_configs(config: Config) -> list[aiohttp.TraceConfig]:
    """An outbound session's hook that sends the current span's `traceparent`; none when off."""
    if config.otel_endpoint is None:
        return []
    hook = aiohttp.TraceConfig()
    hook.on_request_start.append(_send_traceparent)
    return [hook]


async def _send_traceparent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestStartParams,
) -> None:
    TraceContextTextMapPropagator().inject(params.headers)  # nothing outside a span
