"""POST /v1/authentication/form: a hosted link, taking EmailEngine's fields beside ours.

EmailEngine's `type` names the app (or `imap`), `expectedEmail` is our `expectedUser`,
`email` is the mailbox address kept on the account, and `delegated: true` makes it a shared
mailbox (Microsoft) whose address is `email` or is asked for on the link's page. Without an
app the link's page offers the consentable apps to choose from. docs/emailengine.md lists
the differences.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.core import Core
from service.web.appkeys import CORE
from service.web.consent import consent_request, consentable_apps
from service.web.ee_accounts import EMAIL_PATTERN
from service.web.io import authorize, json_body, json_response

OUR_FIELDS = {"app", "expectedUser", "ttl"}
# Fields that shape a mailbox's synchronisation in EmailEngine: checked, then without
# effect here (tokenbroker opens no mailbox).
MAILBOX_FIELDS = {"syncFrom", "notifyFrom", "subconnections", "path"}
EE_FIELDS = {"account", "name", "email", "expectedEmail", "delegated", "redirectUrl", "type"}
FORM_FIELDS = OUR_FIELDS | MAILBOX_FIELDS | EE_FIELDS
TRUE_WORDS, FALSE_WORDS = frozenset({"Y", "true", "1"}), frozenset({"N", "false", "0"})


async def authentication_form(request: web.Request) -> web.Response:
    """Create a hosted link (signed, expiring, single-use until it connects an account)."""
    await authorize(request, "api")
    body = await json_body(request)
    validate.no_unknown(body, FORM_FIELDS)
    body = {key: (None if value == "" else value) for key, value in body.items()}  # Joi .empty('')
    core = request.app[CORE]
    ttl = _ttl(body.get("ttl", limits.LINK_TTL_S.default))
    _mailbox_fields(body)
    email = _email(body)
    consent = await consent_request(
        core,
        account=_account(body.get("account")),
        app=await _app_of(core, body),
        redirect_url=validate.string(body, "redirectUrl", required=True, max_len=limits.URL_MAX),
        expected_user=_expected_user(body),
        name=validate.string(body, "name", max_len=limits.NAME_MAX),
    )
    consent = replace(consent, email=email, delegated=_flag(body, "delegated"))
    return json_response({"url": await core.links.create(consent, ttl)})


def _ttl(ttl: object) -> int:
    bounds = limits.LINK_TTL_S
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not bounds.low <= ttl <= bounds.high:
        raise errors.InvalidInput(
            f"ttl must be an integer from {bounds.low} to {bounds.high} seconds",
            details={"field": "ttl"},
        )
    return ttl


def _account(value: object) -> object:
    """EmailEngine trims the account id; null (or empty) asks for a generated one."""
    return value.strip() or None if isinstance(value, str) else value


def _email(body: dict[str, Any]) -> str | None:
    email = validate.string(body, "email", max_len=limits.USER_MAX)
    if email is not None and not re.search(EMAIL_PATTERN, email):
        raise errors.InvalidInput("email must be an email address", details={"field": "email"})
    return email


def _expected_user(body: dict[str, Any]) -> str | None:
    ours = validate.string(body, "expectedUser", max_len=limits.USER_MAX)
    theirs = validate.string(body, "expectedEmail", max_len=limits.USER_MAX)
    if ours and theirs and ours != theirs:
        raise errors.InvalidInput(
            "expectedUser and expectedEmail differ; give one",
            details={"fields": ["expectedUser", "expectedEmail"]},
        )
    return ours or theirs


def _flag(body: dict[str, Any], key: str) -> bool:
    """A Joi boolean: true/false, or the words Y/true/1 and N/false/0."""
    value = body.get(key)
    if value is None or isinstance(value, bool):
        return bool(value)
    if type(value) is int and value in (0, 1):
        return value == 1
    if isinstance(value, str) and (value in TRUE_WORDS or value in FALSE_WORDS):
        return value in TRUE_WORDS
    raise errors.InvalidInput(f"{key} must be true or false", details={"field": key})


def _mailbox_fields(body: dict[str, Any]) -> None:
    """Check syncFrom/notifyFrom (ISO times), path and subconnections (folder names)."""
    for key in ("syncFrom", "notifyFrom"):
        validate.iso_time(body, key)
    for key in ("path", "subconnections"):
        value = body.get(key)
        folders = [value] if isinstance(value, str) else value
        if value is not None and not (
            isinstance(folders, list)
            and len(folders) <= limits.SCOPES_MAX
            and all(isinstance(f, str) and 0 < len(f) <= limits.NAME_MAX for f in folders)
        ):
            raise errors.InvalidInput(
                f"{key} must be a folder path or a list of them", details={"field": key}
            )


async def _app_of(core: Core, body: dict[str, Any]) -> str:
    """The app: `app` or `type`; else the existing account's; else the only one; else ""."""
    named = {body[k] for k in ("app", "type") if body.get(k) is not None}
    if len(named) > 1:
        raise errors.InvalidInput(
            "app and type name different apps; give one", details={"fields": ["app", "type"]}
        )
    if named == {"imap"}:
        raise errors.InvalidInput(
            "tokenbroker connects OAuth2 accounts only: type must name an OAuth2 app",
            details={"field": "type"},
        )
    if named:
        return validate.app_id(named.pop())
    account_id = _account(body.get("account"))
    if account_id is not None:
        account = await core.accounts.get(validate.account_id(account_id))
        if account is not None:
            return account.app
    apps = await consentable_apps(core)
    return apps[0].id if len(apps) == 1 else ""  # "": the link's page lets the user choose
