"""Health and readiness endpoints."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]


async def test_health_and_ready(client: Client) -> None:
    """/health and /ready answer 200 without a token while Redis is up."""
    assert (await client.get("/health")).status == 200
    resp = await client.get("/ready")
    assert resp.status == 200
    assert (await resp.json())["status"] == "ready"


async def test_unknown_route_is_json(client: Client) -> None:
    """An unknown route or method answers a JSON error with a code, not HTML."""
    resp = await client.get("/nope")
    assert resp.status == 404
    assert (await resp.json())["code"] == "RouteNotFound"
    resp = await client.patch("/v1/settings")
    assert resp.status == 405
    assert (await resp.json())["code"] == "MethodNotAllowed"
