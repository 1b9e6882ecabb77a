"""Operator actions for the audit trail: which routes change what, and the record of one.

The request middleware calls `record_action` after every request to a route named here: a
change that succeeded (status below 400) is recorded, and every admin login, failed or not.
What a record names comes from the route (its {account}, {app}, token {id}) and, for a
create, from the answer's id field; never from a body that could hold a secret.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from service.admin_auth import ACCOUNT
from service.audit import TOKEN_ISSUED
from service.web.appkeys import API_TOKEN, CORE, REQUEST_ID
from service.web.client_ip import client_ip

ADMIN_LOGIN = "admin_login"
ACTIONS: dict[str, str] = {
    "account_create": "account.create",
    "account_update": "account.update",
    "account_delete": "account.delete",
    "account_refresh": "account.refresh",
    "app_create": "app.create",
    "app_update": "app.update",
    "app_delete": "app.delete",
    "app_credentials_promote": "app.credentials_promote",
    "settings_put": "settings.update",
    "settings_post": "settings.update",
    "webhook_secret": "webhook_secret.rotate",
    "webhook_redeliver": "webhook.redeliver",
    "token_create": "api_token.create",
    "token_create_deprecated": "api_token.create",
    "token_delete": "api_token.delete",
    "token_delete_deprecated": "api_token.delete",
    "admin_app_create": "app.create",
    "admin_app_update": "app.update",
    "admin_app_promote": "app.credentials_promote",
    "admin_app_delete": "app.delete",
    "admin_account_connect": "account.connect",
    "admin_account_refresh": "account.refresh",
    "admin_account_delete": "account.delete",
    "admin_settings_save": "settings.update",
    "admin_secret": "webhook_secret.rotate",
    "admin_redeliver": "webhook.redeliver",
    "admin_token_create": "api_token.create",
    "admin_token_revoke": "api_token.delete",
    ADMIN_LOGIN: "admin.login",
    "admin_logout": "admin.logout",
}
# The answer field naming what a create made: (record field, answer field)
CREATED: dict[str, tuple[str, str]] = {
    "account_create": ("account", "account"),
    "app_create": ("app", "id"),
    "token_create": ("target", "id"),
    "token_create_deprecated": ("target", "id"),
}
# The route parameter naming what an action changed: (record field, parameter)
PARAMS: tuple[tuple[str, str], ...] = (("account", "account"), ("app", "app"), ("target", "id"))
ACTION_NAMES = tuple(sorted({*ACTIONS.values(), "admin.login_failed", TOKEN_ISSUED}))


def action_of(request: web.Request) -> str | None:
    """The audited action of the request's route, or None (most requests: one dict lookup)."""
    name = request.match_info.route.name
    return ACTIONS.get(name) if name is not None else None


async def record_action(
    request: web.Request, action: str, status: int, answer: web.StreamResponse | None
) -> None:
    """Record one operator action that answered `status` (a failed login as such)."""
    route = request.match_info.route.name or ""
    if route == ADMIN_LOGIN and status != web.HTTPSeeOther.status_code:
        action = "admin.login_failed"
    elif status >= 400:
        return
    record: dict[str, Any] = {
        "action": action,
        "client": client_ip(request),
        "requestId": request.get(REQUEST_ID),
        "status": status,
        **_actor(request, route),
    }
    for field, param in PARAMS:
        record[field] = request.match_info.get(param)
    if route == "token_delete":  # its {token} is an id (token_delete_deprecated's: the token)
        record["target"] = request.match_info.get("token")
    if route in CREATED and isinstance(answer, web.Response):
        record.update(_created(CREATED[route], answer))
    await request.app[CORE].audit.action(record)


def _actor(request: web.Request, route: str) -> dict[str, Any]:
    if route.startswith("admin_"):
        return {"via": "admin", "actor": f"admin:{ACCOUNT}"}
    token = request.get(API_TOKEN)
    if token is None:
        return {"via": "api"}
    return {
        "via": "api",
        "actor": f"apitoken:{token.id}",
        "apiToken": token.id,
        "apiTokenDescription": token.description,
    }


def _created(fields: tuple[str, str], answer: web.Response) -> dict[str, Any]:
    record_field, answer_field = fields
    try:
        body = orjson.loads(answer.body) if isinstance(answer.body, bytes) else {}
    except orjson.JSONDecodeError:
        return {}
    value = body.get(answer_field) if isinstance(body, dict) else None
    return {record_field: value} if isinstance(value, str) else {}
