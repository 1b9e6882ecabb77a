"""An OTLP/HTTP trace receiver on loopback: decodes ExportTraceServiceRequest bodies into spans."""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field

from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

from service.store.embedded import free_port

Value = str | int | float | bool | None


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the collector received it (ids in lowercase hex, '' for no parent)."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Value]
    service: str

    @property
    def ids(self) -> tuple[str, str]:
        """(trace id, span id): what a call made inside this span carries in its traceparent."""
        return self.trace_id, self.span_id


def traceparent_ids(header: str) -> tuple[str, str]:
    """(trace id, span id) of a W3C traceparent of version 00 whose sampled flag is set."""
    version, trace_id, span_id, flags = header.split("-")
    assert version == "00" and int(flags, 16) & 1, header
    return trace_id, span_id


def _value(value: AnyValue) -> Value:
    kind = value.WhichOneof("value")
    return None if kind is None else getattr(value, kind)


@dataclass
class OtlpReceiver:
    """Accepts POST /v1/traces (protobuf, gzip or not); keeps every span and every raw body."""

    port: int = field(default_factory=free_port)
    spans: list[ReceivedSpan] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def endpoint(self) -> str:
        """The value of OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces)."""
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, request: web.Request) -> web.Response:
        """Decode one export request and answer an empty ExportTraceServiceResponse."""
        body = await request.read()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        self.bodies.append(body)
        export = ExportTraceServiceRequest.FromString(body)
        for resource_spans in export.resource_spans:
            resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append(
                        ReceivedSpan(
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            kind=span.kind,
                            attributes={a.key: _value(a.value) for a in span.attributes},
                            service=str(resource.get("service.name")),
                        )
                    )
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    def named(self, name: str) -> list[ReceivedSpan]:
        """The spans called `name`."""
        return [s for s in self.spans if s.name == name]

    def children(self, parent: ReceivedSpan) -> list[ReceivedSpan]:
        """The spans whose parent is `parent`."""
        return [s for s in self.spans if s.parent_id == parent.span_id]

    def child_names(self, parent: ReceivedSpan) -> set[str]:
        """The names of `parent`'s children."""
        return {s.name for s in self.children(parent)}

    async def start(self) -> None:
        """Listen on the receiver's loopback port."""
        app = web.Application(client_max_size=16 << 20)
        app.router.add_post("/v1/traces", self.handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Close the listening socket."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None
