"""Consent routes: hosted links (create, open, start) and the OAuth callback, as small pages.

Every consent is started by a response to the browser that will finish it: that response
sets the binding cookie (service/binding.py) whose hash the state keeps.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from service import binding, errors, limits, validate
from service.apps import App
from service.consent import CallbackError, ConsentRequest, require_consentable
from service.consent_state import STATE_TTL_S
from service.core import Core
from service.redirects import check_redirect_url, with_query
from service.store.connection import STORE_ERRORS
from service.web.appkeys import CORE

NO_STORE = {"Cache-Control": "no-store"}
PROVIDER_NAMES = {
    "gmail": "Google",
    "gmailService": "Google",
    "outlook": "Microsoft",
    "outlookService": "Microsoft",
    "mailRu": "Mail.ru",
}
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")
PageHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def consent_request(
    core: Core,
    *,
    account: object,
    app: str,
    redirect_url: str | None,
    expected_user: str | None = None,
    name: str | None = None,
) -> ConsentRequest:
    """A checked ConsentRequest: the app exists, the redirectUrl is allowed, an account id.

    An empty `app` leaves the choice to the user, on the hosted link's page.
    """
    account_id = secrets.token_hex(8) if account is None else validate.account_id(account)
    if app:
        require_consentable(await core.apps.require(app))
    if redirect_url is not None:
        allowed = await core.cached_settings.get("allowedRedirectUrls")
        check_redirect_url(redirect_url, core.config.base_url, list(allowed or []))
    return ConsentRequest(account_id, app, redirect_url, expected_user, name)


async def consentable_apps(core: Core) -> list[App]:
    """The apps a user may connect an account to (enabled, interactive), by id."""
    found = []
    for app in await core.apps.all():
        try:
            require_consentable(app)
        except errors.ApiError:
            continue
        found.append(app)
    return sorted(found, key=lambda app: app.id)


def page_errors(handler: PageHandler) -> PageHandler:
    """Answer a page route's errors with a small HTML page instead of JSON."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except CallbackError as exc:
            return _error_page(request, exc.error, exc.redirect_url, exc.retry_url)
        except errors.ApiError as exc:
            return _error_page(request, exc, None)
        except STORE_ERRORS:
            return _error_page(request, errors.StoreUnavailable("please try again later"), None)

    return wrapped


async def direct_link(core: Core, consent: ConsentRequest) -> str:
    """Our URL that starts `consent` in the browser that opens it (once, within 10 min).

    The settings page sends the operator's browser there too: only a request to /oauth
    carries the binding cookie, so only there can an existing binding be kept.
    """
    await core.consent.ready(consent)
    return await core.links.create(consent, STATE_TTL_S, direct=True)


async def start_in_browser(
    request: web.Request,
    consent: ConsentRequest,
    status: int,
    link: dict[str, object] | None = None,
) -> web.Response:
    """Start `consent` bound to this browser: set the binding cookie, go to the provider."""
    core = request.app[CORE]
    bound = browser_binding(request)
    response = _redirect(await core.consent.start(consent, bound, link), status)
    set_binding(response, core.config.base_url, bound)
    return response


def browser_binding(request: web.Request) -> str:
    """The binding of the browser that sent `request`: its cookie's, or a new one."""
    return binding.usable(request.cookies.get(binding.COOKIE)) or binding.new_binding()


def set_binding(response: web.StreamResponse, base_url: str, value: str) -> None:
    """Set the binding cookie: HttpOnly, SameSite=Lax (sent on the provider's redirect back)."""
    response.set_cookie(
        binding.COOKIE,
        value,
        max_age=binding.MAX_AGE_S,
        path=binding.cookie_path(base_url),
        secure=base_url.startswith("https://"),
        httponly=True,
        samesite="Lax",
    )


@page_errors
async def open_link(request: web.Request) -> web.StreamResponse:
    """GET a link: a hosted link shows the page that starts it; a direct one starts at once.

    The page spends nothing, so that a mail scanner fetching the link leaves it usable.
    """
    core = request.app[CORE]
    token = request.query.get("link")
    link = await core.links.check(token)
    if link.direct and request.method == "GET":  # a HEAD spends nothing
        return await start_in_browser(request, await core.links.spend(link), 302)
    consent = await core.links.peek(link)
    bound = browser_binding(request)
    apps = [await core.apps.require(consent.app)] if consent.app else await consentable_apps(core)
    if not apps:
        raise errors.AppNotFound("no OAuth2 app can connect an account now")
    context = {
        "link": token,
        "token": binding.form_token(bound, link.id),
        "provider": _provider_name(apps[0]) if len(apps) == 1 else "your provider",
        "choices": [] if consent.app else [(app.id, _provider_name(app)) for app in apps],
        "ask_email": consent.delegated and not consent.email,
    }
    response = _page(request, "consent_start.html", context, 200)
    set_binding(response, core.config.base_url, bound)
    return response


@page_errors
async def start_link(request: web.Request) -> web.StreamResponse:
    """POST a hosted link's page: spend the link and start its consent in this browser."""
    core = request.app[CORE]
    if request.content_type != "application/x-www-form-urlencoded":
        raise errors.UnsupportedMediaType("send the form as application/x-www-form-urlencoded")
    try:
        form = await request.post()
    except ValueError:  # not UTF-8
        raise errors.InvalidInput("the form could not be read") from None
    except web.HTTPRequestEntityTooLarge:
        raise errors.PayloadTooLarge("the form is too large") from None
    link = await core.links.check(_text(form.get("link")))
    bound = binding.usable(request.cookies.get(binding.COOKIE))
    if not binding.form_token_ok(bound, link.id, form.get("token")):
        raise errors.FormTokenInvalid(
            "this page has expired or did not come from this service; open the link again"
        )
    await _chosen(core, await core.links.peek(link), form)  # a bad choice spends nothing
    spent = await core.links.spend(link)
    retry = core.links.retry_info(link, spent)
    return await start_in_browser(request, await _chosen(core, spent, form), 303, retry)


async def _chosen(core: Core, consent: ConsentRequest, form: Any) -> ConsentRequest:
    """The link's request with what the user chose on its page: the app, a shared mailbox."""
    if not consent.app:
        app = validate.app_id(_text(form.get("app")))
        require_consentable(await core.apps.require(app))
        consent = replace(consent, app=app)
    if consent.delegated and not consent.email:
        email = (_text(form.get("email")) or "").strip()
        if not EMAIL.search(email) or len(email) > limits.USER_MAX:
            raise errors.InvalidInput("enter the shared mailbox's email address")
        consent = replace(consent, email=email)
    return consent


def _provider_name(app: App) -> str:
    return PROVIDER_NAMES.get(app.provider) or str(app.fields.get("name") or app.id)


@page_errors
async def oauth_callback(request: web.Request) -> web.StreamResponse:
    """Finish a consent: check the answer, save the account, send the user back.

    A user who backed out at the provider gets the hosted link back, to try again.
    """
    core = request.app[CORE]
    bound = binding.usable(request.cookies.get(binding.COOKIE))
    try:
        done = await core.consent.finish(request.query, bound)
    except CallbackError as exc:
        if exc.retry:
            exc.retry_url = await core.links.restore(exc.retry)
        raise
    if done.redirect_url:
        target = with_query(done.redirect_url, account=done.account, state=done.state)
        return _redirect(target, 303)
    context = {"account": done.account, "state": done.state}
    return _page(request, "consent_done.html", context, 200)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _redirect(location: str, status: int) -> web.Response:
    return web.Response(status=status, headers={"Location": location, **NO_STORE})


def _error_page(
    request: web.Request,
    error: errors.ApiError,
    redirect_url: str | None,
    retry_url: str | None = None,
) -> web.Response:
    back = with_query(redirect_url, error=error.code) if redirect_url else None
    details = error.details or {}
    context = {
        "code": error.code,
        "message": error.message,
        "missing": details.get("missingScopes", []),
        "back": back,
        "retry": retry_url,
    }
    return _page(request, "consent_error.html", context, error.status)


def _page(request: web.Request, name: str, context: dict[str, Any], status: int) -> web.Response:
    response = aiohttp_jinja2.render_template(name, request, context, status=status)
    response.headers.update(NO_STORE)
    return response
