"""A bench OTLP/HTTP trace sink: counts export requests and the spans in them, keeps nothing.

POST /v1/traces decodes the ExportTraceServiceRequest (to count its spans) and answers an
empty ExportTraceServiceResponse; GET /stats reports {requests, spans, bytes}.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.support.processes import serve_on_loopback


def create_app() -> web.Application:
    """POST /v1/traces and GET /stats; main adds GET /health."""
    stats = {"requests": 0, "spans": 0, "bytes": 0}

    async def traces(request: web.Request) -> web.Response:
        body = await request.read()
        export = ExportTraceServiceRequest.FromString(body)
        stats["requests"] += 1
        stats["bytes"] += len(body)
        stats["spans"] += sum(
            len(scope.spans) for spans in export.resource_spans for scope in spans.scope_spans
        )
        return web.Response(body=b"", content_type="application/x-protobuf")

    async def report(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(stats), content_type="application/json")

    app = web.Application(client_max_size=64 << 20)
    app.router.add_post("/v1/traces", traces)
    app.router.add_get("/stats", report)
    return app


def main() -> None:
    """Serve the sink on 127.0.0.1."""
    serve_on_loopback(create_app, __doc__)


if __name__ == "__main__":
    main()
