"""Admin pages of OAuth2 apps: list, add, edit (provider-specific fields), promote, delete."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import app_credentials, errors, validate
from service.app_mail import MAIL_FIELDS, PORT_FIELDS
from service.apps import App
from service.clock import iso
from service.grant_deadline import DECLARATIONS, PLATFORMS, PUBLISHING_STATUSES
from service.providers import BASE_SCOPES, ENDPOINT_FIELDS, KINDS, MICROSOFT_CLOUDS
from service.web.admin.render import flash_redirect, form_of, invalid, page, words
from service.web.admin.session import admin_page
from service.web.appkeys import CONFIG, CORE

OPTIONAL = (
    "name", "description", "redirectUrl", "tenant", "cloud", "baseScopes",
    "serviceClient", "serviceClientEmail", "issuer", *ENDPOINT_FIELDS, *DECLARATIONS,
)  # fmt: skip
KEPT = ("serviceClient", "serviceClientEmail", "tenant")  # never removed by an empty field
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
KEY_FILE = "serviceKeyFile"  # Google's JSON key file, uploaded
CONSENT = ("enabled", "redirectUrl", "additionalScopes", "skipScopes")  # users consent
CLIENT = ("clientId", "clientSecret", "credentialExpires", "nextClientSecret")
ROTATION = ("nextClientSecret", "nextCredentialExpires")
CERTIFICATES = (
    "clientCertificate", "clientCertificateKey", "nextClientCertificate",
    "nextClientCertificateKey",
)  # fmt: skip
SERVICE_ACCOUNT = ("serviceClient", "serviceClientEmail", "serviceKey", KEY_FILE)
MICROSOFT = ("tenant", "cloud")
KIND_FIELDS: dict[str, tuple[str, ...]] = {
    "gmail": (*CONSENT, *CLIENT, *ROTATION, "baseScopes", "publishingStatus"),
    "outlook": (*CONSENT, *CLIENT, *ROTATION, *CERTIFICATES, *MICROSOFT, "baseScopes", "platform"),
    "mailRu": (*CONSENT, *CLIENT, *ROTATION),
    "oidc": (
        *CONSENT,
        *CLIENT,
        *ROTATION,
        *CERTIFICATES,
        "issuer",
        *ENDPOINT_FIELDS,
        "publishingStatus",
    ),
    "gmailService": (*SERVICE_ACCOUNT, "baseScopes", "additionalScopes", "skipScopes"),
    "outlookService": (*CLIENT, *ROTATION, *CERTIFICATES, *MICROSOFT, "baseScopes"),
}


def kind_fields(kind: str, overrides: bool) -> frozenset[str]:
    """The fields the form of one provider type shows (endpoints only where they may change)."""
    shown = {"name", "description", *KIND_FIELDS.get(kind, ())}
    if overrides:
        shown.update(("issuer", *ENDPOINT_FIELDS))
    return frozenset(shown)


def form_context(
    values: dict[str, Any], app: App | None, base_url: str, overrides: bool
) -> dict[str, Any]:
    """What the app form shows: the typed or stored values (never a secret).

    Without a known provider type (a new app) it is the first step: choosing the type.
    """
    kind = app.provider if app else values.get("provider")
    return {
        "values": values,
        "app": app,
        "kind": kind if kind in KINDS else None,
        "fields": kind_fields(str(kind), overrides),
        "kinds": KINDS,
        "base_scopes": BASE_SCOPES,
        "clouds": MICROSOFT_CLOUDS,
        "endpoint_fields": ENDPOINT_FIELDS,
        "publishing_statuses": PUBLISHING_STATUSES,
        "platforms": PLATFORMS,
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


def body_of(form: dict[str, str], app: App | None, overrides: bool) -> dict[str, Any]:
    """The JSON-API body a form stands for; an emptied field is removed, an empty secret kept.

    Only the fields of the app's provider type are taken (every other one is not on its form).
    """
    kind = app.provider if app else form.get("provider", "")
    shown = kind_fields(kind, overrides)
    body: dict[str, Any] = {}
    if "clientId" in shown and (form.get("clientId") or (app is not None and app.client_id)):
        body["clientId"] = form.get("clientId", "")
    if app is None:
        body.update({"id": form.get("id", ""), "provider": kind})
    for name in (n for n in OPTIONAL if n in shown):
        if form.get(name):
            body[name] = form[name]
        elif app is not None and name in app.fields and name not in KEPT:
            body[name] = None
    body.update(_mail_fields(form, app))
    for secret in (s for s in WRITE_ONLY if s in shown):
        if form.get(secret):
            body[secret] = form[secret]
    if "serviceKey" not in body and form.get(KEY_FILE) and KEY_FILE in shown:
        body["serviceKey"] = form[KEY_FILE]
    for name in (n for n in EXPIRIES if n in shown):
        if form.get(name):
            body[name] = form[name]
        elif app is not None and name in app.fields:
            body[name] = None
    if app is None and "clientSecret" in shown and "clientCertificate" not in body:
        body.setdefault("clientSecret", "")
    if "enabled" in shown:
        body["enabled"] = form.get("enabled") == "on"
    for name in ("additionalScopes", "skipScopes"):
        if name in shown:
            body[name] = words(form.get(name, ""))
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


def _context(request: web.Request, values: dict[str, Any], app: App | None) -> dict[str, Any]:
    config = request.app[CONFIG]
    return form_context(values, app, config.base_url, config.allow_endpoint_overrides)


@admin_page
async def new_app(request: web.Request) -> web.StreamResponse:
    """The first step, choosing the provider type; with ?provider= that type's empty form."""
    values = {"provider": request.query.get("provider", ""), "enabled": "on"}
    return await page(request, "app_form.html", _context(request, values, None))


@admin_page
async def create_app(request: web.Request) -> web.StreamResponse:
    """Create an app from the form; on bad input show the form again as typed."""
    core, form = request.app[CORE], await form_of(request, files=(KEY_FILE,))
    try:
        body = body_of(form, None, core.config.allow_endpoint_overrides)
        app = await core.apps.create(body, iso(core.clock.now_ms()))
    except errors.ApiError as exc:
        return await invalid(request, "app_form.html", _context(request, form, None), exc)
    raise await flash_redirect(request, f"/admin/apps/{app.id}", f"App {app.id} saved.")


async def _app(request: web.Request) -> App:
    return await request.app[CORE].apps.require(validate.app_id(request.match_info["app"]))


@admin_page
async def edit_app(request: web.Request) -> web.StreamResponse:
    """The form of a stored app, with the redirect URL to register at the provider."""
    app = await _app(request)
    context = _context(request, stored_values(app), app)
    context["accounts"] = await request.app[CORE].apps.account_count(app.id)
    return await page(request, "app_form.html", context)


@admin_page
async def update_app(request: web.Request) -> web.StreamResponse:
    """Save the edit form; an empty client secret keeps the stored one."""
    core, app = request.app[CORE], await _app(request)
    form = await form_of(request, files=(KEY_FILE,))
    try:
        body = body_of(form, app, core.config.allow_endpoint_overrides)
        await core.apps.update(app, body, iso(core.clock.now_ms()))
    except errors.ApiError as exc:
        values = {**form, "id": app.id, "provider": app.provider}
        return await invalid(request, "app_form.html", _context(request, values, app), exc)
    raise await flash_redirect(request, f"/admin/apps/{app.id}", f"App {app.id} saved.")


@admin_page
async def promote_credentials(request: web.Request) -> web.StreamResponse:
    """Make the next client secret or certificate the current one (one click)."""
    core, app = request.app[CORE], await _app(request)
    await form_of(request)  # the CSRF check reads the form
    try:
        await core.apps.promote(app, iso(core.clock.now_ms()))
    except errors.NoNextCredential as exc:
        context = _context(request, stored_values(app), app)
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
