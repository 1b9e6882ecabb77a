"""Reading JSON requests and writing JSON responses with orjson."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from service import errors, validate
from service.apitokens import ApiToken
from service.validate import obj
from service.web.appkeys import CORE


def json_response(
    data: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    """Return `data` as an application/json response."""
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return web.Response(body=orjson.dumps(data), status=status, headers=all_headers)


async def json_body(request: web.Request) -> dict[str, Any]:
    """Parse the request body as a JSON object, with clear errors for everything else."""
    if request.content_type not in ("application/json", "application/octet-stream", ""):
        raise errors.UnsupportedMediaType("send the body as application/json")
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.InvalidJson("the request body is not valid JSON") from None
    return obj(data)


def account_param(request: web.Request) -> str:
    """Return the route's valid {account} and bind it to this request's log lines."""
    account = validate.account_id(request.match_info["account"])
    structlog.contextvars.bind_contextvars(account=account)
    return account


async def authorize(request: web.Request, scope: str, account: str | None = None) -> ApiToken:
    """Require an API token with `scope` (and access to `account`) on this request; return it."""
    header = request.headers.get("Authorization", "")
    scheme, _, bearer = header.partition(" ")
    token = bearer.strip() if scheme.lower() == "bearer" else None
    return await request.app[CORE].token_service.authorize(token, scope, account)
