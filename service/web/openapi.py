"""GET /openapi.json: the OpenAPI 3.1 document of every route, rendered once per app."""

from __future__ import annotations

from aiohttp import web

from service.web.appkeys import OPENAPI


async def document(request: web.Request) -> web.Response:
    """Serve the OpenAPI document."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")
