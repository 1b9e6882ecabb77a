"""A bare aiohttp OAuth2 token endpoint that grants every refresh_token request at once."""

from __future__ import annotations

import secrets

import orjson
from aiohttp import web

from tests.support.processes import serve_on_loopback

SCOPE = "openid email profile"
LIFETIME_S = 3600


def create_app() -> web.Application:
    """POST /token rotates any refresh token; GET /stats counts requests (main adds /health)."""
    counts = {"refresh_requests": 0, "bad_requests": 0}

    async def token(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != "refresh_token" or not form.get("refresh_token"):
            counts["bad_requests"] += 1
            body = {"error": "unsupported_grant_type"}
            return web.Response(
                status=400, body=orjson.dumps(body), content_type="application/json"
            )
        counts["refresh_requests"] += 1
        body_ok = {
            "access_token": secrets.token_urlsafe(24),
            "refresh_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": LIFETIME_S,
            "scope": SCOPE,
        }
        return web.Response(body=orjson.dumps(body_ok), content_type="application/json")

    async def stats(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(counts), content_type="application/json")

    app = web.Application()
    app.router.add_post("/token", token)
    app.router.add_get("/stats", stats)
    return app


def main() -> None:
    """Serve the fake provider on 127.0.0.1 (default loop policy and run_app, like the service)."""
    serve_on_loopback(create_app, __doc__)


if __name__ == "__main__":
    main()
