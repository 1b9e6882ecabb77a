"""What an EmailEngine import brings over, and what it cannot and why: a pure mapping.

EmailEngine's provider types map to ours through PROVIDER_NAMES alone: the first name of
each row that service.providers.KINDS knows is used; a type with none is not imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from service import errors, validate
from service.apitokens import SCOPES
from service.providers import KINDS, MICROSOFT_CLOUDS, MICROSOFT_TENANTS, SERVICE_KINDS
from service.webhooks.events import EVENTS

PROVIDER_NAMES: dict[str, tuple[str, ...]] = {
    "gmail": ("gmail", "google"),
    "outlook": ("outlook", "microsoft"),
    "mailRu": ("mailRu",),
    "gmailService": ("gmailService",),
    "outlookService": ("outlookService",),
}
MICROSOFT_LIKE = frozenset({"outlook", "microsoft", "outlookService"})
CLOUDS = {"global": "global", "gcc-high": "usgov", "china": "china"}  # EmailEngine -> ours
TOKEN_SCOPES = {"*": ("*",), "api": ("api", "oauth-tokens"), "metrics": ("metrics",)}
APP_TEXT = ("clientId", "clientSecret", "baseScopes")  # taken as they are, when set
SERVICE_ACCOUNT = ("serviceClient", "serviceClientEmail", "serviceKey")  # gmailService
APP_TAKEN = frozenset({"id", "provider", "name", "extraScopes", "skipScopes", *APP_TEXT})
APP_TAKEN_MS = APP_TAKEN | {"authority", "cloud"}
APP_TAKEN_GS = APP_TAKEN | {*SERVICE_ACCOUNT, "authMethod"}
APP_IGNORED = frozenset({"created", "updated", "meta", "enabled"})  # ours have no such state
SETTINGS = ("webhooks", "webhooksEnabled", "webhookEvents", "enableOAuthTokensApi")
SETTINGS_HEADERS = "webhooksCustomHeaders"


def target_kind(ee_type: object) -> str | None:
    """Our provider kind for an EmailEngine provider type (None: not supported)."""
    names = PROVIDER_NAMES.get(ee_type, ()) if isinstance(ee_type, str) else ()
    return next((name for name in names if name in KINDS), None)


@dataclass(frozen=True)
class Skip:
    """Something not imported (or a part of it), and why."""

    what: str  # app | account | token | setting | field
    id: str
    reason: str


@dataclass(frozen=True)
class AccountPlan:
    """One account to import (tokens in clear, only in memory)."""

    id: str
    app: str
    user: str
    name: str | None
    refresh_token: str | None = field(repr=False)  # None: a service-account app's mailbox
    access_token: str | None = field(repr=False)
    expires_at_ms: int | None
    scopes: list[str] | None


@dataclass(frozen=True)
class TokenPlan:
    """One API token to import by its raw-bytes digest."""

    digest: str
    scopes: list[str]
    account: str | None
    description: str | None
    created_ms: int


@dataclass
class Plan:
    """The whole import: what goes in and what is left out."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> AppStore body
    accounts: list[AccountPlan] = field(default_factory=list)
    tokens: list[TokenPlan] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)
    service_secret: str | None = field(default=None, repr=False)  # EE-style webhook key
    skipped: list[Skip] = field(default_factory=list)

    def skip(self, what: str, ident: str, reason: str) -> None:
        """Record one thing left out."""
        self.skipped.append(Skip(what, ident, reason))


def plan_apps(plan: Plan, apps: dict[str, dict[str, Any]]) -> None:
    """Map each EmailEngine app to an AppStore create body, or say why not."""
    for app_id, record in apps.items():
        ee_type = record.get("provider")
        kind = target_kind(ee_type)
        if kind is None:
            plan.skip("app", app_id, f"provider type {ee_type!r} is not supported")
            continue
        try:
            validate.app_id(app_id)
        except errors.ApiError:
            plan.skip("app", app_id, "the id is outside our app id rules")
            continue
        body: dict[str, Any] = {"id": app_id, "provider": kind, "name": record.get("name")}
        body.update({name: record[name] for name in APP_TEXT if record.get(name) is not None})
        for name, ours in (("extraScopes", "additionalScopes"), ("skipScopes", "skipScopes")):
            if record.get(name):
                body[ours] = list(record[name])
        problem = _kind_fields(kind, record, body)
        if problem is not None:
            plan.skip("app", app_id, problem)
            continue
        plan.apps[app_id] = {k: v for k, v in body.items() if v is not None}
        taken = APP_TAKEN_MS if kind in MICROSOFT_LIKE else APP_TAKEN
        taken = APP_TAKEN_GS if kind == "gmailService" else taken
        for name in sorted(set(record) - taken - APP_IGNORED):
            plan.skip("field", f"{app_id}.{name}", _app_field_reason(name))
        if kind == "outlookService" and "baseScopes" in record:
            plan.skip("field", f"{app_id}.baseScopes", OUTLOOK_SERVICE_SCOPES)


OUTLOOK_SERVICE_SCOPES = (
    "EmailEngine asks Microsoft Graph's .default for every outlookService app, and so does "
    "the imported app (set baseScopes imap here for Exchange Online's)"
)


def _kind_fields(kind: str, record: dict[str, Any], body: dict[str, Any]) -> str | None:
    """Add the fields of Microsoft and service-account apps; a reason when the app cannot come."""
    if kind == "gmailService":
        if record.get("authMethod", "serviceKey") != "serviceKey":
            return f"authMethod {record.get('authMethod')!r} (workload identity) is not supported"
        body.update({name: record.get(name) for name in SERVICE_ACCOUNT})
        if not all(body.get(name) for name in SERVICE_ACCOUNT):
            return "its service account is incomplete (serviceClient, email or key missing)"
    if kind not in MICROSOFT_LIKE:
        return None
    body["tenant"] = record.get("authority") or "common"
    cloud = record.get("cloud") or "global"
    ours = cloud if cloud in MICROSOFT_CLOUDS else CLOUDS.get(cloud)  # EE's names first
    if ours is None:
        return f"cloud {cloud!r} is not supported"
    body["cloud"] = ours
    if kind == "outlookService":
        body.pop("baseScopes", None)  # always Graph's .default, as in EmailEngine
        if body["tenant"] in MICROSOFT_TENANTS:
            return "an outlookService app needs its tenant id as authority"
    return None


def _app_field_reason(name: str) -> str:
    if name == "redirectUrl":
        return "EmailEngine's callback; register tokenbroker's redirect URI at the provider"
    return "no counterpart in tokenbroker's apps"


def plan_account(plan: Plan, account: Any, known_apps: set[str]) -> None:
    """Map one EmailEngine account to an AccountPlan, or say why not."""
    oauth2 = account.oauth2
    if oauth2 is None:
        plan.skip("account", account.id, "not an OAuth2 account (IMAP/SMTP password)")
        return
    app_id = str(oauth2.get("provider"))
    reason = _account_problem(account.id, app_id, oauth2, plan, known_apps)
    if reason is not None:
        plan.skip("account", account.id, reason)
        return
    auth = oauth2.get("auth") or {}
    if auth.get("delegatedUser"):
        plan.skip("field", f"{account.id}.delegatedUser", "no delegated-user field yet")
    access, expires = oauth2.get("accessToken"), _ms(oauth2.get("expires"))
    if access and expires is None:
        plan.skip("field", f"{account.id}.accessToken", "no expiry: it is refreshed instead")
        access = None
    refresh = oauth2.get("refreshToken") or None
    user = str(auth.get("user") or account.email or "")
    if plan.apps[app_id]["provider"] in SERVICE_KINDS:
        if not user:
            plan.skip("account", account.id, "a service-account app's account names no mailbox")
            return
        if refresh is not None:
            plan.skip("field", f"{account.id}.refreshToken", SERVICE_REFRESH)
            refresh = None
    scope = oauth2.get("scope") or oauth2.get("scopes")
    scopes = scope.split() if isinstance(scope, str) else scope if isinstance(scope, list) else None
    plan.accounts.append(
        AccountPlan(
            id=account.id,
            app=app_id,
            user=user,
            name=account.name or None,
            refresh_token=refresh,
            access_token=access or None,
            expires_at_ms=expires if access else None,
            scopes=scopes,
        )
    )


SERVICE_REFRESH = (
    "a service-account app's mailbox has no refresh token: its tokens come from the app"
)


def _account_problem(
    account_id: str, app_id: str, oauth2: dict[str, Any], plan: Plan, known_apps: set[str]
) -> str | None:
    try:
        validate.account_id(account_id)
    except errors.ApiError:
        return "the id is outside our account id rules"
    if app_id not in known_apps:
        return f"its app {app_id!r} no longer exists in EmailEngine"
    if app_id not in plan.apps:
        return f"its app {app_id!r} is not imported"
    if not oauth2.get("refreshToken") and plan.apps[app_id]["provider"] not in SERVICE_KINDS:
        return "it holds no refresh token"
    return None


def _ms(value: object) -> int | None:
    if not isinstance(value, str):
        return None
    try:
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    except ValueError:
        return None


def plan_token(plan: Plan, token_id: str, record: dict[str, Any]) -> None:
    """Map one EmailEngine API token, or say why not (never widening what it may do)."""
    if record.get("permissions"):
        plan.skip("token", token_id[:16], "narrowed by permissions, which have no counterpart")
        return
    scopes = [ours for s in record.get("scopes") or () for ours in TOKEN_SCOPES.get(s, ())]
    dropped = [s for s in record.get("scopes") or () if s not in TOKEN_SCOPES]
    if dropped:
        plan.skip("field", f"{token_id[:16]}.scopes", f"scopes {dropped} have no counterpart")
    account = record.get("account")
    try:
        if account is not None:
            validate.account_id(account)
    except errors.ApiError:
        plan.skip("token", token_id[:16], "bound to an account id outside our rules")
        return
    if not scopes:
        plan.skip("token", token_id[:16], "none of its scopes has a counterpart")
        return
    plan.tokens.append(
        TokenPlan(
            digest=token_id,
            scopes=list(dict.fromkeys(s for s in scopes if s in SCOPES)),
            account=account,
            description=record.get("description"),
            created_ms=int(record.get("created") or 0),
        )
    )


def plan_settings(plan: Plan, settings: dict[str, Any]) -> None:
    """Map the settings that have a counterpart; list the notable ones that do not."""
    for name in SETTINGS:
        if name in settings:
            plan.settings[name] = settings[name]
    events = plan.settings.get("webhookEvents")
    if isinstance(events, list):
        unknown = [e for e in events if e != "*" and e not in EVENTS]
        if unknown:
            plan.skip("field", "settings.webhookEvents", f"events {unknown} do not exist here")
        known = [e for e in events if e in EVENTS]
        plan.settings["webhookEvents"] = "*" if "*" in events else known
    headers = settings.get(SETTINGS_HEADERS)
    if isinstance(headers, list):
        plan.settings["webhookHeaders"] = {
            str(h.get("key")): str(h.get("value")) for h in headers if isinstance(h, dict)
        }
    secret = settings.get("serviceSecret")
    if isinstance(secret, str) and secret:
        plan.service_secret = secret  # receivers keep verifying with it (webhookFormat)
