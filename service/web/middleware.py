"""Request middleware: request id and one log line per request; errors to JSON in one place."""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware as AppMiddleware

from service import errors, logs
from service.store.connection import STORE_ERRORS
from service.tracing import Tracing
from service.web.admin.middleware import is_admin_path
from service.web.admin.session import Handler, Middleware
from service.web.appkeys import CORE, REQUEST_ID, REQUEST_IDS
from service.web.audit_actions import action_of, record_action

log = structlog.get_logger("http")
SECRET_PATH_ROUTES = frozenset({"token_delete_deprecated"})  # DELETE /v1/token/{the token}


def request_ids() -> Iterator[str]:
    """Request ids: a random per-process prefix and a counter (no syscall per request)."""
    prefix = secrets.token_hex(4)
    return (f"{prefix}-{n:x}" for n in itertools.count(1))


def error_response(exc: errors.ApiError) -> web.Response:
    """Render an ApiError in the shape {statusCode, error, message, code, details?}."""
    body: dict[str, Any] = {
        "statusCode": exc.status,
        "error": HTTPStatus(exc.status).phrase,
        "message": exc.message,
        "code": exc.code,
    }
    if exc.details:
        body["details"] = exc.details
    if isinstance(exc, errors.InvalidInput) and exc.details:
        body["fields"] = ee_fields(exc.message, exc.details)
    return web.Response(
        body=orjson.dumps(body),
        status=exc.status,
        content_type="application/json",
        headers={**exc.headers, "Cache-Control": "no-store"},
    )


def ee_fields(message: str, details: dict[str, Any]) -> list[dict[str, str]]:
    """EmailEngine's `fields` of a 400: {message, key} for each field the details name."""
    named = details.get("fields") or [details.get("field")]
    return [{"message": message, "key": str(k)} for k in named if isinstance(k, str)]


def _from_http_exception(exc: web.HTTPException, method: str) -> errors.ApiError:
    if exc.status == 404:
        return errors.RouteNotFound("no such route")
    if exc.status == 405:
        return errors.MethodNotAllowed(f"method {method} is not allowed on this route")
    if exc.status == 413:
        return errors.PayloadTooLarge("the request body is too large")
    generic = errors.ApiError(exc.reason or "request failed")
    generic.status, generic.code = exc.status, "HttpError"
    return generic


def request_middleware(admin: Middleware) -> AppMiddleware:
    """The app's one middleware; /admin requests also pass through `admin` (admin_site).

    One middleware rather than three (the admin session and pages ones ran on every API
    request only to pass it on): the token endpoint's hot path pays for one layer.
    """

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        """Bind a request id, turn every error into JSON, and log one line per request."""
        ids: Iterator[str] = request.app[REQUEST_IDS]
        request_id = request.headers.get("X-Request-Id", "")[:64] or next(ids)
        # aiohttp runs each request in a task of its own, with a copy of the connection's
        # context: what a request binds (request_id here, account in the handler) ends with it
        structlog.contextvars.bind_contextvars(request_id=request_id)
        request[REQUEST_ID] = request_id
        started = time.perf_counter()
        core = request.app.get(CORE)
        action = action_of(request) if core is not None and core.audit.enabled else None
        try:
            if core is not None and core.tracing.enabled:
                response = await _traced(core.tracing, request, handler, admin, request_id)
            else:
                response = await _answer(request, handler, admin)
        except web.HTTPException as exc:  # a redirect: _answer lets those through
            if action is not None:
                await record_action(request, action, exc.status, None)
            raise
        if action is not None:
            await record_action(request, action, response.status, response)
        response.headers["X-Request-Id"] = request_id
        logs.request_line(
            {
                "method": request.method,
                "path": _logged_path(request),
                "status": response.status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            }
        )
        return response

    return middleware


def _logged_path(request: web.Request) -> str:
    """The request's path, or its route's template where the path carries a secret."""
    route = request.match_info.route
    if route.name in SECRET_PATH_ROUTES and route.resource is not None:
        return route.resource.canonical
    return request.path


async def _answer(request: web.Request, handler: Handler, admin: Middleware) -> web.StreamResponse:
    """The handler's answer, or the JSON error of what it raised."""
    try:
        if is_admin_path(request.path):
            return await admin(request, handler)
        return await handler(request)
    except errors.ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = error_response(_from_http_exception(exc, request.method))
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except STORE_ERRORS as exc:
        log.error("store_unavailable", error=type(exc).__name__)
        return error_response(errors.StoreUnavailable("the store (Redis) is unavailable"))
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return error_response(errors.InternalError("internal error"))


async def _traced(
    tracing: Tracing,
    request: web.Request,
    handler: Handler,
    admin: Middleware,
    request_id: str,
) -> web.StreamResponse:
    """_answer inside the request's span (the child of an incoming `traceparent`)."""
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else None
    name = f"{request.method} {route}" if route else request.method
    with tracing.server_span(name, request.headers) as span:
        span.set_attribute("http.request.method", request.method)
        if route:
            span.set_attribute("http.route", route)
        span.set_attribute("request.id", request_id)
        account = request.match_info.get("account")
        if account is not None:
            span.set_attribute("account.id", account)
        response = await _answer(request, handler, admin)
        span.set_attribute("http.response.status_code", response.status)
        return response
