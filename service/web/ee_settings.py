"""EmailEngine's settings API: GET with key selection, POST answering {updated}.

Its keys map onto ours: webhooks, webhooksEnabled, webhookEvents (["*"] is our "*"),
webhooksCustomHeaders ([{key, value}] is our webhookHeaders map), serviceUrl (read-only:
it is TOKENBROKER_BASE_URL), eventTypes (read-only), notifyHeaders (only [], as
tokenbroker sends no message webhooks), serviceSecret (only once it is a setting of ours).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors
from service.core import Core
from service.settings import DEFAULTS, check_value
from service.web.io import json_response
from service.webhooks.events import EVENTS
from service.webhooks.headers import WebhookHeaders

READ_ONLY = ("serviceUrl", "eventTypes")
EE_KEYS = (
    "webhooks",
    "webhooksEnabled",
    "webhookEvents",
    "webhooksCustomHeaders",
    "serviceUrl",
    "serviceSecret",
    "notifyHeaders",
    "eventTypes",
)
SECRET = "serviceSecret"  # noqa: S105 - a setting's name


def _not_allowed(key: str, why: str = "is not allowed") -> errors.InvalidInput:
    return errors.InvalidInput(f'"{key}" {why}', details={"field": key})


def selected_keys(query: dict[str, str]) -> list[str]:
    """The keys a GET asks for (`?key=true`); an unknown key is a 400 as EmailEngine's."""
    for key, value in query.items():
        if key not in EE_KEYS:
            raise _not_allowed(key)
        if value not in ("true", "false"):
            raise _not_allowed(key, "must be a boolean")
    return [k for k, v in query.items() if v == "true"]


def read_view(ours: dict[str, Any], keys: list[str], base_url: str) -> dict[str, Any]:
    """EmailEngine's values of `keys` from our settings (header values masked)."""
    view: dict[str, Any] = {}
    for key in keys:
        if key == "webhookEvents":
            events = ours["webhookEvents"]
            view[key] = ["*"] if events == "*" else events
        elif key == "webhooksCustomHeaders":
            headers = ours["webhookHeaders"]
            view[key] = [{"key": k, "value": v} for k, v in headers.items()] or None
        elif key == "serviceUrl":
            view[key] = base_url
        elif key == "eventTypes":
            view[key] = list(EVENTS)
        elif key == "notifyHeaders":
            view[key] = []
        elif key == SECRET:
            view[key] = bool(ours.get(SECRET))  # EmailEngine shows secrets as booleans
        else:
            view[key] = ours[key]
    return view


def _ours(key: str, value: Any, base_url: str) -> tuple[str, Any] | None:
    """Our setting name and value for an EmailEngine key (None: nothing to store)."""
    if key == "webhookEvents":
        if not isinstance(value, list):
            raise _not_allowed(key, "must be an array")
        return key, "*" if "*" in value else value
    if key == "webhooksCustomHeaders":
        if not isinstance(value, list) or not all(isinstance(h, dict) for h in value):
            raise _not_allowed(key, "must be an array of {key, value}")
        return "webhookHeaders", {str(h.get("key")): h.get("value") for h in value}
    if key == "serviceUrl":
        if not isinstance(value, str) or value.rstrip("/") != base_url.rstrip("/"):
            raise _not_allowed(key, "is TOKENBROKER_BASE_URL here: set it in the environment")
        return None
    if key == "notifyHeaders":
        if value != []:
            raise _not_allowed(key, "must be empty: tokenbroker sends no message webhooks")
        return None
    if key == "webhooks" and value == "":
        return key, None  # EmailEngine's way of clearing it
    if key in READ_ONLY or key not in EE_KEYS or (key == SECRET and SECRET not in DEFAULTS):
        raise _not_allowed(key)
    return key, value


async def post_settings(
    body: dict[str, Any], core: Core, headers: WebhookHeaders, base_url: str, allow_private: bool
) -> web.Response:
    """Check every given key, store the ones with a counterpart, answer {updated}."""
    values: dict[str, Any] = {}
    for key, value in body.items():
        mapped = _ours(key, value, base_url)
        if mapped is not None:
            name, ours = mapped
            values[name] = check_value(name, ours, allow_private=allow_private)
    await core.settings.update(values, headers)
    return json_response({"updated": list(body)})
