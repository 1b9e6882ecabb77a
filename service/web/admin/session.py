"""Admin sessions: the encrypted cookie, its key derived from TOKENBROKER_SECRET, login checks."""

from __future__ import annotations

import base64
import functools
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from aiohttp_session import Session, get_session, session_middleware
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from service.admin_auth import SESSION_TTL_S
from service.config import Config
from service.web.appkeys import ADMIN

COOKIE = "tb_admin"
CSRF_FIELD = "csrf"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Middleware = Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]


def session_key(secret: bytes) -> Fernet:
    """The Fernet key of the session cookie: HKDF-SHA256 of TOKENBROKER_SECRET, labelled."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"tokenbroker admin session")
    return Fernet(base64.urlsafe_b64encode(hkdf.derive(secret)))


def sessions(config: Config) -> Middleware:
    """The session middleware of /admin only: HttpOnly, SameSite=Strict, Secure on https.

    Only the settings pages run it (admin_site); the JSON API and the token endpoint's hot
    path never reach it.
    """
    storage = EncryptedCookieStorage(
        session_key(config.secret_key),
        cookie_name=COOKIE,
        path="/admin",
        max_age=SESSION_TTL_S,
        httponly=True,
        samesite="Strict",
        secure=config.base_url.startswith("https://"),
    )
    inner: Middleware = session_middleware(storage)
    return inner


def csrf_token(session: Session) -> str:
    """The session's CSRF token, made on first use."""
    if CSRF_FIELD not in session:
        session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return str(session[CSRF_FIELD])


def csrf_ok(session: Session, presented: str) -> bool:
    """True when the presented form token is the session's (constant-time)."""
    expected = session.get(CSRF_FIELD)
    return bool(expected) and hmac.compare_digest(str(expected), presented)


async def logged_in(request: web.Request) -> bool:
    """True when the request carries a live session (Redis says it was not logged out)."""
    session = await get_session(request)
    sid = session.get("sid")
    return isinstance(sid, str) and await request.app[ADMIN].session_valid(sid)


def login_url(request: web.Request) -> str:
    """The login page, coming back to this page afterwards."""
    return f"/admin/login?next={quote(request.path_qs, safe='')}"


def admin_page(handler: Handler) -> Handler:
    """Require a logged-in operator; others are sent to the login page."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        if not await logged_in(request):
            raise web.HTTPSeeOther(login_url(request))
        return await handler(request)

    return wrapped
