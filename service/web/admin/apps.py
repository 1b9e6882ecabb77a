"""Admin pages of OAuth2 apps: list, add, edit (provider-specific fields), promote, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import app_credentials, errors, validate
from service.app_mail import MAIL_FIELDS, PORT_FIELDS
from service.apps import App
from service.clock import iso
from service.providers import BASE_SCOPES, ENDPOINT_FIELDS, KINDS, MICROSOFT_CLOUDS
from service.web.admin.render import flash_redirect, form_of, invalid, page, words
from service.web.admin.session import admin_page
from service.web.appkeys import CONFIG, CORE

OPTIONAL = (
    "name", "description", "redirectUrl", "tenant", "cloud", "baseScopes",
    "serviceClient", "serviceClientEmail", "issuer", *ENDPOINT_FIELDS,
)  # fmt: skip
OUTLOOK_ONLY = ("tenant", "cloud")
GMAIL_SERVICE_ONLY = ("serviceClient", "serviceClientEmail")
WRITE_ONLY = (
    "clientSecret",
    "serviceKey",
    "nextClientSecret",
    "clientCertificate",
    "clientCertificateKey",
    "nextClientCertificate",
    "nextClientCertificateKey",
)  # fmt: skip: sent only when typed in; never shown again
EXPIRIES = ("credentialExpires", "nextCredentialExpires")


def form_context(values: dict[str, Any], app: App | None, base_url: str) -> dict[str, Any]:
    """What the app form shows: the typed or stored values (never a secret)."""
    return {
        "values": values,
        "app": app,
        "kinds": KINDS,
        "base_scopes": BASE_SCOPES,
        "clouds": MICROSOFT_CLOUDS,
        "endpoint_fields": ENDPOINT_FIELDS,
        "callback": app.callback_url(base_url) if app else f"{base_url}/oauth/callback",
        "credentials": app_credentials.describe(app) if app else None,
    }


def stored_values(app: App) -> dict[str, Any]:
    """The form values of a stored app."""
    return {
        **app.fields,
        "id": app.id,
        "provider": app.provider,
        "clientId": app.client_id,
        "additionalScopes": "\n".join(app.additional_scopes),
        "skipScopes": "\n".join(app.skip_scopes),
        "enabled": "on" if app.enabled else "",
    }


def _applies(name: str, kind: str) -> bool:
    """The form shows every field; some apply to one provider type only."""
    if name in OUTLOOK_ONLY:
        return kind in ("outlook", "outlookService")
    return name not in GMAIL_SERVICE_ONLY or kind == "gmailService"


def body_of(form: dict[str, str], app: App | None) -> dict[str, Any]:
    """The JSON-API body a form stands for; an emptied field is removed, an empty secret kept."""
    body: dict[str, Any] = {}
    if form.get("clientId") or (app is not None and app.client_id):
        body["clientId"] = form.get("clientId", "")
    if app is None:
        body.update({"id": form.get("id", ""), "provider": form.get("provider", "")})
    kind = app.provider if app else form.get("provider", "")
    for name in OPTIONAL:
        value = form.get(name, "")
        if not _applies(name, kind):
            continue
        if value:
            body[name] = value
        elif app is not None and name in app.fields:
            body[name] = None
    body.update(_mail_fields(form, app))
    for secret in WRITE_ONLY:
        if form.get(secret):
            body[secret] = form[secret]
    for name in EXPIRIES:
        if form.get(name):
            body[name] = form[name]
        elif app is not None and name in app.fields:
            body[name] = None
    if app is None and kind != "gmailService" and "clientCertificate" not in body:
        body.setdefault("clientSecret", "")
    body["enabled"] = form.get("enabled") == "on"
    body["additionalScopes"] = words(form.get("additionalScopes", ""))
    body["skipScopes"] = words(form.get("skipScopes", ""))
    return body


def _mail_fields(form: dict[str, str], app: App | None) -> dict[str, Any]:
    """The mailbox check's server fields of the form (ports as numbers when they are)."""
    body: dict[str, Any] = {}
    for name in MAIL_FIELDS:
        value = form.get(name, "").strip()
        if value:
            body[name] = int(value) if name in PORT_FIELDS and value.isdigit() else value
        elif app is not None and name in app.fields:
            body[name] = None
    return body


@admin_page
async def list_apps(request: web.Request) -> web.StreamResponse:
    """Every app with its provider, accounts and last error."""
    core = request.app[CORE]
    rows = [(app, await core.apps.account_count(app.id)) for app in await core.apps.all()]
    return await page(request, "apps.html", {"rows": rows})


@admin_page
async def new_app(request: web.Request) -> web.StreamResponse:
    """The empty app form."""
    context = form_context(
        {"provider": "gmail", "enabled": "on"}, None, request.app[CONFIG].base_url
    )
    return await page(request, "app_form.html", context)


@admin_page
async def create_app(request: web.Request) -> web.StreamResponse:
    """Create an app from the form; on bad input show the form again as typed."""
    core, form = request.app[CORE], await form_of(request)
    try:
        app = await core.apps.create(body_of(form, None), iso(core.clock.now_ms()))
    except errors.ApiError as exc:
        context = form_context(form, None, request.app[CONFIG].base_url)
        return await invalid(request, "app_form.html", context, exc)
    raise await flash_redirect(request, f"/admin/apps/{app.id}", f"App {app.id} saved.")


async def _app(request: web.Request) -> App:
    return await request.app[CORE].apps.require(validate.app_id(request.match_info["app"]))


@admin_page
async def edit_app(request: web.Request) -> web.StreamResponse:
    """The form of a stored app, with the redirect URL to register at the provider."""
    app = await _app(request)
    context = form_context(stored_values(app), app, request.app[CONFIG].base_url)
    context["accounts"] = await request.app[CORE].apps.account_count(app.id)
    return await page(request, "app_form.html", context)


@admin_page
async def update_app(request: web.Request) -> web.StreamResponse:
    """Save the edit form; an empty client secret keeps the stored one."""
    core, app, form = request.app[CORE], await _app(request), await form_of(request)
    try:
        await core.apps.update(app, body_of(form, app), iso(core.clock.now_ms()))
    except errors.ApiError as exc:
        values = {**form, "id": app.id, "provider": app.provider}
        context = form_context(values, app, request.app[CONFIG].base_url)
        return await invalid(request, "app_form.html", context, exc)
    raise await flash_redirect(request, f"/admin/apps/{app.id}", f"App {app.id} saved.")


@admin_page
async def promote_credentials(request: web.Request) -> web.StreamResponse:
    """Make the next client secret or certificate the current one (one click)."""
    core, app = request.app[CORE], await _app(request)
    await form_of(request)  # the CSRF check reads the form
    try:
        await core.apps.promote(app, iso(core.clock.now_ms()))
    except errors.NoNextCredential as exc:
        context = form_context(stored_values(app), app, request.app[CONFIG].base_url)
        return await invalid(request, "app_form.html", context, exc)
    message = f"App {app.id}: the next credential is now the current one."
    raise await flash_redirect(request, f"/admin/apps/{app.id}", message)


@admin_page
async def confirm_delete_app(request: web.Request) -> web.StreamResponse:
    """Ask before deleting an app."""
    app = await _app(request)
    context = {"what": f"the OAuth2 app {app.id}", "action": f"/admin/apps/{app.id}/delete"}
    return await page(request, "confirm.html", {**context, "back": f"/admin/apps/{app.id}"})


@admin_page
async def delete_app(request: web.Request) -> web.StreamResponse:
    """Delete an app that has no accounts."""
    app = await _app(request)
    try:
        await request.app[CORE].apps.delete(app.id)
    except errors.AppInUse as exc:
        context = {"what": f"the OAuth2 app {app.id}", "action": f"/admin/apps/{app.id}/delete"}
        context["back"] = f"/admin/apps/{app.id}"
        return await invalid(request, "confirm.html", context, exc)
    raise await flash_redirect(request, "/admin/apps", f"App {app.id} deleted.")
