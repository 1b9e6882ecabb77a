"""Admin service settings: Security (the token endpoint checkbox) and webhooks."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors
from service.settings import check_value
from service.web.admin.render import flash_redirect, form_of, invalid, page, words
from service.web.admin.session import admin_page
from service.web.appkeys import CONFIG, CORE, HTTP
from service.webhook_probe import send_test_event
from service.webhooks.emailengine import FORMATS
from service.webhooks.events import EVENTS
from service.webhooks.headers import WebhookHeaders
from service.webhooks.secrets import WebhookSecrets
from service.webhooks.sender import Sender
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret


def form_values(settings: dict[str, Any]) -> dict[str, Any]:
    """The settings as the form shows them."""
    events = settings["webhookEvents"]
    return {
        "enableOAuthTokensApi": settings["enableOAuthTokensApi"],
        "allowedRedirectUrls": "\n".join(settings["allowedRedirectUrls"]),
        "webhooks": settings["webhooks"] or "",
        "webhooksEnabled": settings["webhooksEnabled"],
        "allEvents": events == "*",
        "events": list(EVENTS) if events == "*" else events,
        "webhookHeaders": "\n".join(f"{k}: {v}" for k, v in settings["webhookHeaders"].items()),
        "webhookFormat": settings["webhookFormat"],
    }


def typed_values(request_form: dict[str, str], events: list[str]) -> dict[str, Any]:
    """What the user typed, to show again after an error."""
    return {
        "enableOAuthTokensApi": "enableOAuthTokensApi" in request_form,
        "allowedRedirectUrls": request_form.get("allowedRedirectUrls", ""),
        "webhooks": request_form.get("webhooks", ""),
        "webhooksEnabled": "webhooksEnabled" in request_form,
        "allEvents": "allEvents" in request_form,
        "events": events,
        "webhookHeaders": request_form.get("webhookHeaders", ""),
        "webhookFormat": request_form.get("webhookFormat", "standard"),
    }


def parse_headers(text: str) -> dict[str, str]:
    """'Name: value' lines into a mapping."""
    headers: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise errors.InvalidInput(
                f"write each header as 'Name: value' (got {line.strip()[:80]!r})",
                details={"field": "webhookHeaders"},
            )
        headers[name.strip()] = value.strip()
    return headers


def values_of(form: dict[str, str], events: list[str], allow_private: bool) -> dict[str, Any]:
    """Checked setting values from the form; raise InvalidInput naming the field."""
    raw: dict[str, Any] = {
        "enableOAuthTokensApi": "enableOAuthTokensApi" in form,
        "allowedRedirectUrls": words(form.get("allowedRedirectUrls", "")),
        "webhooks": form.get("webhooks") or None,
        "webhooksEnabled": "webhooksEnabled" in form,
        "webhookEvents": "*" if "allEvents" in form else events,
        "webhookHeaders": parse_headers(form.get("webhookHeaders", "")),
        "webhookFormat": form.get("webhookFormat", "standard"),
    }
    if form.get(SERVICE_SECRET):  # write-only: left empty, the stored one stays
        raw[SERVICE_SECRET] = form[SERVICE_SECRET]
    return {k: check_value(k, v, allow_private=allow_private) for k, v in raw.items()}


async def _render(request: web.Request, values: dict[str, Any], **extra: Any) -> web.Response:
    core = request.app[CORE]
    has_secret = bool(await core.redis.hexists(core.keys.settings, "webhookSecret"))
    has_service_secret = await ServiceSecret(core.redis, core.keys, core.cipher).exists()
    context = {
        "values": values,
        "events": EVENTS,
        "formats": FORMATS,
        "has_secret": has_secret,
        "has_service_secret": has_service_secret,
        **extra,
    }
    return await page(request, "settings.html", context)


@admin_page
async def show_settings(request: web.Request) -> web.StreamResponse:
    """The service settings page."""
    return await _render(request, form_values(await request.app[CORE].settings.all()))


@admin_page
async def save_settings(request: web.Request) -> web.StreamResponse:
    """Save the settings form (the only page that may enable the token endpoint)."""
    core = request.app[CORE]
    form = await form_of(request)
    events = [e for e in (await request.post()).getall("events", []) if isinstance(e, str)]
    try:
        values = values_of(form, events, request.app[CONFIG].allow_private_urls)
    except errors.ApiError as exc:
        has_secret = bool(await core.redis.hexists(core.keys.settings, "webhookSecret"))
        context = {
            "values": typed_values(form, events),
            "events": EVENTS,
            "formats": FORMATS,
            "has_secret": has_secret,
            "has_service_secret": await ServiceSecret(core.redis, core.keys, core.cipher).exists(),
        }
        return await invalid(request, "settings.html", context, exc)
    sealers = (
        WebhookHeaders(core.redis, core.keys, core.cipher),
        ServiceSecret(core.redis, core.keys, core.cipher),
    )
    saved = await core.settings.update(values, *sealers)
    if isinstance(saved[SERVICE_SECRET], str):  # set or generated now: shown this once
        return await _render(request, form_values(saved), new_service_secret=saved[SERVICE_SECRET])
    raise await flash_redirect(request, "/admin/settings", "Settings saved.")


@admin_page
async def rotate_secret(request: web.Request) -> web.StreamResponse:
    """Make a new webhook secret and show it on this answer only."""
    core = request.app[CORE]
    secret = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(core.clock.now_ms())
    values = form_values(await core.settings.all())
    return await _render(request, values, new_secret=secret)


@admin_page
async def send_test(request: web.Request) -> web.StreamResponse:
    """Send a signed test event and say what the receiver answered."""
    sender = Sender(request.app[HTTP], request.app[CONFIG].webhook_timeout_s)
    try:
        msg_id, attempt = await send_test_event(request.app[CORE], sender)
    except errors.WebhookNotConfigured:
        message = "Set a webhook URL and rotate a secret first."
        raise await flash_redirect(request, "/admin/settings", message) from None
    outcome = f"answered HTTP {attempt.status}" if attempt.status else f"failed: {attempt.error}"
    message = f"Test event {msg_id} sent; the receiver {outcome}."
    raise await flash_redirect(request, "/admin/settings", message)
