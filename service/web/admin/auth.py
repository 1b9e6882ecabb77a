"""Admin login and logout pages."""

from __future__ import annotations

from aiohttp import web
from aiohttp_session import get_session, new_session

from service.admin_auth import ACCOUNT, LoginFailed, LoginThrottled
from service.web.admin.render import form_of, invalid, page
from service.web.admin.session import logged_in
from service.web.appkeys import ADMIN
from service.web.client_ip import client_ip


def safe_next(target: str | None) -> str:
    """Where to go after login: a local /admin/ path only (no open redirect)."""
    if target and target.startswith("/admin/") and not target.startswith("//"):
        return target
    return "/admin/"


async def login_form(request: web.Request) -> web.StreamResponse:
    """The login page (straight to the dashboard when already logged in)."""
    if await logged_in(request):
        raise web.HTTPSeeOther(safe_next(request.query.get("next")))
    context = {
        "user": ACCOUNT,
        "next": safe_next(request.query.get("next")),
        "nav": False,
        "out": "out" in request.query,
    }
    return await page(request, "login.html", context)


async def login(request: web.Request) -> web.StreamResponse:
    """Check the password (rate-limited per IP and account) and start a session."""
    form = await form_of(request)
    user, target = form.get("user", ""), safe_next(form.get("next"))
    context = {"user": user, "next": target, "nav": False}
    ip = client_ip(request)  # the proxy's X-Forwarded-For when it is trusted
    try:
        sid = await request.app[ADMIN].login(user, form.get("password", ""), ip)
    except (LoginFailed, LoginThrottled) as exc:
        return await invalid(request, "login.html", context, exc)
    session = await new_session(request)  # a fresh cookie and CSRF token after login
    session["sid"] = sid
    raise web.HTTPSeeOther(target)


async def logout(request: web.Request) -> web.StreamResponse:
    """End the session here and in Redis."""
    session = await get_session(request)
    sid = session.get("sid")
    if isinstance(sid, str):
        await request.app[ADMIN].logout(sid)
    session.invalidate()
    raise web.HTTPSeeOther("/admin/login?out=1")
