"""GET /openapi.json: the OpenAPI 3.1 document of every route."""

from __future__ import annotations

from aiohttp import web

from service.web.io import json_response


async def document(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    from service.web.openapi_doc import build_document

    return json_response(build_document())
