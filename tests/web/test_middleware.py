"""The request middleware: one line per request, its own context, the admin chain on /admin."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.logs import logged_lines

Client = TestClient[web.Request, web.Application]


async def test_each_request_line_has_its_own_context(client: Client) -> None:
    """What one request binds (its account) is not on the next request's line."""
    with logged_lines() as lines:
        first = await client.get("/v1/account/alpha/oauth-token", headers={"X-Request-Id": "r-1"})
        second = await client.get("/health")
    assert first.status == 401 and second.status == 200
    token_line, health_line = lines.events("request")
    assert token_line["account"] == "alpha" and token_line["request_id"] == "r-1", token_line
    assert "account" not in health_line and health_line["request_id"] != "r-1", health_line
    assert health_line["request_id"] == second.headers["X-Request-Id"]


async def test_admin_chain_runs_for_admin_paths_only(client: Client) -> None:
    """/admin answers carry the settings pages' headers; API answers and /administer do not."""
    admin = await client.get("/admin/login")
    assert admin.status == 200 and admin.headers["X-Frame-Options"] == "DENY"
    for path in ("/health", "/administer"):
        resp = await client.get(path)
        assert "X-Frame-Options" not in resp.headers, path
    missing = await client.get("/admin/nope")
    assert missing.status == 404 and missing.content_type == "text/html"
