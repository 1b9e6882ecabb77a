"""Account routes: import or connect, list, search, show, delete, force a refresh, check mail."""

from __future__ import annotations

import re
import secrets
import string
from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.account_record import F
from service.accounts import STATUSES, AccountWrite
from service.core import Core
from service.grant_deadline import at_grant
from service.mailcheck import MailCheck
from service.providers import SERVICE_KINDS
from service.refresh import Refreshed
from service.refresh_errors import refresh_error
from service.timing import DEFAULT_LIFETIME_S, next_refresh_ms
from service.web.appkeys import CORE
from service.web.consent import consent_request, direct_link
from service.web.ee_accounts import (
    EMAIL_PATTERN,
    STATUS_OF_STATE,
    account_view,
    ee_state,
    list_item,
)
from service.web.io import account_param, authorize, json_body, json_response, known_query

IMPORT_FIELDS = {"account", "name", "oauth2", "email", "imap", "smtp"}
AUTHORIZE_FIELDS = {"provider", "authorize", "redirectUrl"}
OAUTH2_FIELDS = {"auth", "refreshToken", "accessToken", "expires", "scopes", *AUTHORIZE_FIELDS}
AUTH_FIELDS = {"user", "delegatedUser"}
LIST_PARAMS = {"page", "pageSize", "status", "state", "query"}
ID_ALPHABET = string.digits + string.ascii_lowercase  # generated ids as EmailEngine's: 16 of these
EMAIL = re.compile(EMAIL_PATTERN)  # searched as JSON Schema's `pattern` is
TRUE, FALSE = ("true", "1", "y", "yes"), ("false", "0", "n", "no")


def generated_id() -> str:
    """A new account id for an import that gives `account: null`."""
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(16))


def mail_protocols(body: dict[str, Any]) -> None:
    """`imap`/`smtp` may only be false: tokenbroker keeps tokens, it opens no mailbox."""
    for key in ("imap", "smtp"):
        if key in body and body[key] is not False:
            raise errors.InvalidInput(
                f"{key} must be false: tokenbroker keeps OAuth2 tokens only", details={"field": key}
            )


def email_field(body: dict[str, Any]) -> str | None:
    """The body's `email`, when given: an address (something@something)."""
    email = validate.string(body, "email", max_len=limits.USER_MAX)
    if email is not None and not EMAIL.search(email):
        raise errors.InvalidInput("email must be a valid email", details={"field": "email"})
    return email


async def create_account(request: web.Request) -> web.Response:
    """Import an account with a refresh token obtained elsewhere, or start its consent."""
    await authorize(request, "api")
    body = await json_body(request)
    validate.no_unknown(body, IMPORT_FIELDS)
    mail_protocols(body)
    if body.get("account", "") is None:
        body = {**body, "account": generated_id()}
    oauth2 = validate.obj(body.get("oauth2"), "oauth2")
    core = request.app[CORE]
    if validate.boolean(oauth2, "authorize"):
        return await _authorize(core, body, oauth2)
    return await _import(core, body, oauth2)


async def _authorize(core: Core, body: dict[str, Any], oauth2: dict[str, Any]) -> web.Response:
    """Start a consent for a new or existing account: answer the URL that starts it.

    The URL is ours (a direct link): the browser that opens it gets the binding cookie
    and goes on to the provider, so only that browser can finish the consent.
    """
    validate.no_unknown(oauth2, AUTHORIZE_FIELDS, "oauth2")
    consent = await consent_request(
        core,
        account=body.get("account"),
        app=validate.app_id(oauth2.get("provider")),
        redirect_url=validate.string(oauth2, "redirectUrl", max_len=limits.URL_MAX),
        name=validate.string(body, "name", max_len=limits.NAME_MAX),
    )
    return json_response({"redirect": await direct_link(core, consent)})


async def _import(core: Core, body: dict[str, Any], oauth2: dict[str, Any]) -> web.Response:
    """Import an account with its tokens."""
    account_id, state = await import_grant(core, body, oauth2)
    return json_response({"account": account_id, "state": state})


async def import_grant(core: Core, body: dict[str, Any], oauth2: dict[str, Any]) -> tuple[str, str]:
    """Store an imported grant (a new account or a new grant of one); (id, new|existing)."""
    account_id = validate.account_id(body.get("account"))
    validate.no_unknown(oauth2, OAUTH2_FIELDS - {"redirectUrl"}, "oauth2")
    auth = validate.obj(oauth2.get("auth"), "oauth2.auth")
    validate.no_unknown(auth, AUTH_FIELDS, "oauth2.auth")
    delegated = validate.string(auth, "delegatedUser", max_len=limits.USER_MAX)
    email = email_field(body)
    app = await core.apps.require(validate.app_id(oauth2.get("provider")))
    user = validate.string(auth, "user", required=True, max_len=limits.USER_MAX)
    refresh = _refresh_token(app.provider, oauth2)
    access = validate.string(oauth2, "accessToken", max_len=limits.ACCESS_TOKEN_MAX)
    scopes = validate.scopes(oauth2["scopes"], "scopes") if "scopes" in oauth2 else app.scopes
    name = validate.string(body, "name", max_len=limits.NAME_MAX)
    now = core.clock.now_ms()
    expires = validate.iso_time(oauth2, "expires")
    if access is None:
        expires = None  # an expiry without a token to go with it means nothing
    elif expires is None:
        expires = now + DEFAULT_LIFETIME_S * 1000
    write = AccountWrite(
        app=app.id,
        provider=app.provider,
        user=user or "",
        name=name or None,
        access_token=access,
        refresh_token=refresh,
        expires_at_ms=expires,
        lifetime_ms=max(expires - now, 0) if expires is not None else None,
        scopes=scopes,
        app_endpoints=app.endpoints_fingerprint,
        identity={
            k: v for k, v in ((F.EMAIL, email), (F.DELEGATED_USER, delegated)) if v is not None
        },
        grant_deadline=at_grant(app.provider, app.fields, None, now),  # import: consent now
    )
    due = next_refresh_ms(core.config, now, expires, None) if expires is not None else now
    data = {"user": user, "provider": app.provider}
    saved = await core.accounts.save(account_id, write, due, now, data)
    return account_id, saved.state.value


def _refresh_token(provider: str, oauth2: dict[str, Any]) -> str | None:
    """The imported refresh token: required, except on service-account apps.

    Those have none (their tokens come from the app's own grant); one given is refused.
    """
    if provider not in SERVICE_KINDS:
        return validate.string(
            oauth2, "refreshToken", required=True, max_len=limits.REFRESH_TOKEN_MAX
        )
    if oauth2.get("refreshToken") is not None:
        raise errors.InvalidInput(
            f"{provider} accounts have no refresh token: their tokens come from the app",
            details={"field": "refreshToken"},
        )
    return None


async def list_accounts(request: web.Request) -> web.Response:
    """List accounts by page: one status (ours) or state (EmailEngine's), a prefix query."""
    await authorize(request, "api")
    known_query(request, LIST_PARAMS)
    page = validate.integer(request.query.get("page"), "page", limits.PAGE)
    size = validate.integer(request.query.get("pageSize"), "pageSize", limits.PAGE_SIZE)
    status = request.query.get("status", "all")
    if status != "all" and status not in STATUSES:
        raise errors.InvalidInput(
            f"status must be one of {', '.join(STATUSES)}", details={"field": "status"}
        )
    state = ee_state(request.query.get("state", "*"))
    query = request.query.get("query", "")[: limits.SEARCH_MAX]
    total, accounts = await _listing(request.app[CORE], page, size, status, state, query)
    return json_response(
        {
            "total": total,
            "pages": -(-total // size),
            "page": page,
            "query": query or False,
            "state": state,
            "accounts": [list_item(a) for a in accounts],
        }
    )


async def _listing(
    core: Core, page: int, size: int, status: str, state: str, query: str
) -> tuple[int, list[Any]]:
    if state != "*":
        wanted = STATUS_OF_STATE.get(state)
        if wanted is None or status not in ("all", wanted):
            return 0, []  # no account of ours is in that state
        status = wanted
    if query:
        return await core.accounts.find(query, page, size, status)
    return await core.accounts.page(page, size, status)


async def get_account(request: web.Request) -> web.Response:
    """Show one account (never any token) in EmailEngine's shape plus our fields."""
    account_id = account_param(request)
    await authorize(request, "api", account_id)
    known_query(request, set())
    core = request.app[CORE]
    account = await core.accounts.require(account_id)
    app = await core.apps.get(account.app)
    preset = "imap" if app and app.provider != "oidc" else None  # EmailEngine's default
    base_scopes = app.fields.get("baseScopes", preset) if app else None
    return json_response(account_view(account, base_scopes))


def revoke_param(request: web.Request) -> bool:
    """`?revoke=` as EmailEngine reads it: a boolean, false when absent."""
    raw = request.query.get("revoke", "false").lower()
    if raw not in TRUE + FALSE:
        raise errors.InvalidInput("revoke must be a boolean", details={"field": "revoke"})
    return raw in TRUE


async def delete_account(request: web.Request) -> web.Response:
    """Delete an account and every key of it; with ?revoke=true revoke its grant first."""
    account_id = account_param(request)
    await authorize(request, "api", account_id)
    known_query(request, {"revoke"})
    revoke = revoke_param(request)
    core = request.app[CORE]
    account = await core.accounts.require(account_id)
    deleted, revocation = await core.removal.delete(account, revoke=revoke)
    body: dict[str, Any] = {
        "account": account_id,
        "deleted": deleted,
        "revoked": revocation is not None and revocation.revoked,
    }
    if revocation is not None and not revocation.revoked:
        body["reason"] = revocation.reason
    return json_response(body)


async def refresh_account(request: web.Request) -> web.Response:
    """Refresh the account's token now, whatever its expiry."""
    account_id = account_param(request)
    await authorize(request, "api", account_id)
    core = request.app[CORE]
    account = await core.accounts.require(account_id)
    outcome = await core.refresher.refresh(account_id, 0, force=True, app=account.app)
    if isinstance(outcome, Refreshed):
        return json_response(_refreshed_body(outcome.account.public()))
    raise refresh_error(outcome)


def _refreshed_body(public: dict[str, Any]) -> dict[str, Any]:
    return {
        "account": public["account"],
        "refreshed": True,
        "expires": public["expires"],
        "scopes": public["scopes"],
    }


async def verify_account(request: web.Request) -> web.Response:
    """Check the account's mailbox with its token: IMAP, SMTP and the mail API, classified."""
    account_id = account_param(request)
    await authorize(request, "api", account_id)
    known_query(request, set())
    body = await MailCheck(request.app[CORE]).check(account_id)
    return json_response(body, headers={"Cache-Control": "no-store"})
