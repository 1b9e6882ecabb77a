"""OAuth2 app routes: list, create, show, partial update, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors, validate
from service.apitokens import ApiToken
from service.apps import App
from service.clock import iso
from service.providers import ENDPOINT_FIELDS
from service.web.appkeys import CONFIG, CORE
from service.web.io import authorize, json_body, json_response

OPERATOR_FIELDS = ("issuer", *ENDPOINT_FIELDS)  # where the broker sends codes and tokens


def require_operator(token: ApiToken, body: dict[str, Any], app: App | None) -> None:
    """Refuse a body that sets or changes an app's endpoint URLs unless `token` has `*`.

    The operator's authority (a `*` token, the CLI or the settings pages) decides where
    grants are sent; an `api` token may manage apps but never redirect their traffic.
    """
    if token.allows("*"):
        return
    stored = app.fields if app is not None else {}
    changed = [f for f in OPERATOR_FIELDS if f in body and body[f] != stored.get(f)]
    if changed:
        raise errors.OperatorAuthorityRequired(
            f"setting {', '.join(changed)} needs an API token with the '*' scope "
            "(or the settings pages)",
            details={"fields": changed},
        )


async def list_apps(request: web.Request) -> web.Response:
    """List every OAuth2 app (never a client secret)."""
    await authorize(request, "api")
    core, base = request.app[CORE], request.app[CONFIG].base_url
    apps = await core.apps.all()
    items = [app.public(await core.apps.account_count(app.id), base) for app in apps]
    return json_response({"total": len(items), "apps": items})


async def create_app_route(request: web.Request) -> web.Response:
    """Create an OAuth2 app."""
    token = await authorize(request, "api")
    core, body = request.app[CORE], await json_body(request)
    require_operator(token, body, None)
    app = await core.apps.create(body, iso(core.clock.now_ms()))
    return json_response(app.public(0, request.app[CONFIG].base_url), status=201)


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
    count = await core.apps.account_count(app.id)
    return json_response(updated.public(count, request.app[CONFIG].base_url))


async def delete_app(request: web.Request) -> web.Response:
    """Delete an OAuth2 app that has no accounts."""
    await authorize(request, "api")
    app_id = validate.app_id(request.match_info["app"])
    await request.app[CORE].apps.delete(app_id)
    return json_response({"id": app_id, "deleted": True})
