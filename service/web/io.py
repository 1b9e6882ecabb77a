"""Reading JSON requests and writing JSON responses with orjson."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import web

from service import errors, validate
from service.apitokens import ApiToken
from service.validate import obj
from service.web.appkeys import API_TOKEN, CORE


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


ACCESS_TOKEN_PARAM = "access_token"  # noqa: S105 - the query parameter's name, not a secret


def presented_token(request: web.Request) -> str | None:
    """The API token of the request: the Authorization header, else `?access_token=`.

    The request log line names the path only (never the query string) and aiohttp's access
    log is off, so a token in the query never reaches a log line.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, bearer = header.partition(" ")
    if scheme.lower() == "bearer" and bearer.strip():
        return bearer.strip()
    return request.query.get(ACCESS_TOKEN_PARAM) or None


async def authorize(request: web.Request, scope: str, account: str | None = None) -> ApiToken:
    """Require an API token with `scope` (and access to `account`) on this request; return it."""
    token = presented_token(request)
    allowed = await request.app[CORE].token_service.authorize(token, scope, account)
    request[API_TOKEN] = allowed  # who acted, for the audit trail
    return allowed


def known_query(request: web.Request, allowed: set[str]) -> None:
    """Refuse a query parameter the route does not know (`access_token` is known everywhere)."""
    unknown = sorted(set(request.query) - allowed - {ACCESS_TOKEN_PARAM})
    if unknown:
        raise errors.UnknownQueryParameter(
            f"unknown query parameter(s): {', '.join(unknown)}",
            details={"fields": unknown},
        )
