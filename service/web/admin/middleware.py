"""Admin middleware: session, CSRF check on every POST, HTML error pages, no-store and framing."""

from __future__ import annotations

import functools

import aiohttp_jinja2
import structlog
from aiohttp import web
from aiohttp_session import get_session

from service import errors
from service.config import Config
from service.store.connection import STORE_ERRORS
from service.web.admin.session import CSRF_FIELD, Handler, Middleware, csrf_ok, sessions

PREFIX = "/admin"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'",
}
log = structlog.get_logger("admin")


class CsrfFailed(errors.Forbidden):
    """A settings-page form arrived without this session's CSRF token."""

    code = "CsrfFailed"


def error_page(request: web.Request, status: int, message: str) -> web.Response:
    """A small HTML page saying what went wrong (never a secret: messages are ours)."""
    context = {"status": status, "message": message, "nav": False}
    return aiohttp_jinja2.render_template("admin/error.html", request, context, status=status)


async def check_csrf(request: web.Request) -> None:
    """Refuse a POST whose form does not carry the session's CSRF token."""
    form = await request.post()
    presented = form.get(CSRF_FIELD)
    session = await get_session(request)
    if not isinstance(presented, str) or not csrf_ok(session, presented):
        raise CsrfFailed("the form has expired or did not come from this site; reload the page")


def is_admin_path(path: str) -> bool:
    """True for the settings pages' paths: /admin and below."""
    return path.startswith(PREFIX) and (len(path) == len(PREFIX) or path[len(PREFIX)] == "/")


def admin_site(config: Config) -> Middleware:
    """What /admin requests pass through (the request middleware sends only those here)."""
    session = sessions(config)

    async def admin(request: web.Request, handler: Handler) -> web.StreamResponse:
        return await session(request, functools.partial(admin_pages, handler=handler))

    return admin


async def admin_pages(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Check CSRF on POST and answer errors with an HTML page."""
    try:
        if request.method == "POST":
            await check_csrf(request)
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            exc.headers.update(HEADERS)
            raise
        response = error_page(request, exc.status, exc.reason or "request failed")
    except errors.ApiError as exc:
        response = error_page(request, exc.status, exc.message)
        response.headers.update(exc.headers)
    except STORE_ERRORS as exc:
        log.error("store_unavailable", error=type(exc).__name__)
        response = error_page(request, 503, "The store (Redis) is unavailable; try again shortly.")
    except Exception:
        log.exception("admin_page_error", path=request.path)
        response = error_page(request, 500, "Something went wrong; the log says what.")
    if not request.path.startswith(PREFIX + "/static/"):
        response.headers.update(HEADERS)
    return response
