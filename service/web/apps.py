"""OAuth2 app routes: list, create, show, partial update, delete, credential promotion."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.apitokens import ApiToken
from service.app_credentials import describe
from service.app_mail import TOKEN_TARGET_FIELDS
from service.apps import App
from service.clock import iso
from service.providers import ENDPOINT_FIELDS
from service.web.appkeys import CONFIG, CORE
from service.web.io import authorize, json_body, json_response

# where the broker sends codes and tokens: the provider's endpoints, the mail check's servers
OPERATOR_FIELDS = ("issuer", *ENDPOINT_FIELDS, *TOKEN_TARGET_FIELDS)


def require_operator(token: ApiToken, body: dict[str, Any], app: App | None) -> None:
    """Refuse a body that sets or changes an app's endpoint URLs unless `token` has `*`.

    The operator's authority (a `*` token, the CLI or the settings pages) decides where
    grants are sent; an `api` token may manage apps but never redirect their traffic.
    """
    if token.allows("*"):
        return
    stored = app.fields if app is not None else {}
    changed = [f for f in OPERATOR_FIELDS if f in body and _stored_form(body[f]) != stored.get(f)]
    if changed:
        raise errors.OperatorAuthorityRequired(
            f"setting {', '.join(changed)} needs an API token with the '*' scope "
            "(or the settings pages)",
            details={"fields": changed},
        )


def _stored_form(value: object) -> object:
    """A field's value as the app's hash holds it (ports are stored as text)."""
    return str(value) if type(value) is int else value


PAGE_QUERY = {"page", "pageSize"}


def paging(request: web.Request) -> tuple[int, int]:
    """EmailEngine's `page` (from 0) and `pageSize` (1-1000, default 20); others are refused."""
    validate.no_unknown(dict(request.query), PAGE_QUERY, "query")
    page = validate.integer(request.query.get("page"), "page", limits.PAGE)
    return page, validate.integer(request.query.get("pageSize"), "pageSize", limits.PAGE_SIZE)


def listing_order(app: App) -> tuple[str, str]:
    """EmailEngine lists ids by localeCompare, descending: letters compare case-insensitively."""
    return app.id.casefold(), app.id.swapcase()


async def list_apps(request: web.Request) -> web.Response:
    """List OAuth2 apps a page at a time in EmailEngine's order (never a secret)."""
    await authorize(request, "api")
    page, size = paging(request)
    core, base = request.app[CORE], request.app[CONFIG].base_url
    apps = sorted(await core.apps.all(), key=listing_order, reverse=True)
    shown = apps[page * size : (page + 1) * size]
    items = [app.public(await core.apps.account_count(app.id), base) for app in shown]
    pages = max(1, -(-len(apps) // size))
    return json_response({"total": len(apps), "pages": pages, "page": page, "apps": items})


async def create_app_route(request: web.Request) -> web.Response:
    """Create an OAuth2 app; answers its id as EmailEngine does."""
    token = await authorize(request, "api")
    core, body = request.app[CORE], await json_body(request)
    require_operator(token, body, None)
    app = await core.apps.create(body, iso(core.clock.now_ms()))
    return json_response({"id": app.id, "created": True})


async def get_app(request: web.Request) -> web.Response:
    """Show one OAuth2 app."""
    await authorize(request, "api")
    core = request.app[CORE]
    app = await core.apps.require(validate.app_id(request.match_info["app"]))
    count = await core.apps.account_count(app.id)
    return json_response(app.public(count, request.app[CONFIG].base_url))


async def update_app(request: web.Request) -> web.Response:
    """Change some fields of an OAuth2 app; an omitted secret is kept."""
    token = await authorize(request, "api")
    core = request.app[CORE]
    app = await core.apps.require(validate.app_id(request.match_info["app"]))
    body = await json_body(request)
    require_operator(token, body, app)
    updated = await core.apps.update(app, body, iso(core.clock.now_ms()))
    return json_response({"id": updated.id, "updated": True})


async def promote_credentials(request: web.Request) -> web.Response:
    """Make the app's next client secret or certificate the current one (409 when none)."""
    await authorize(request, "api")
    core = request.app[CORE]
    app = await core.apps.require(validate.app_id(request.match_info["app"]))
    promoted = await core.apps.promote(app, iso(core.clock.now_ms()))
    body = {"id": promoted.id, "promoted": True, "credentials": describe(promoted)}
    return json_response(body)


async def delete_app(request: web.Request) -> web.Response:
    """Delete an OAuth2 app and its accounts; a missing one answers deleted: false."""
    await authorize(request, "api")
    app_id = validate.app_id(request.match_info["app"])
    try:
        removed = await request.app[CORE].removal.delete_app(app_id)
    except errors.AppNotFound:
        return json_response({"id": app_id, "deleted": False, "accounts": 0})
    return json_response({"id": app_id, "deleted": True, "accounts": removed})
