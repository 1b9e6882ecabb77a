"""PUT /v1/account/{id} as EmailEngine's: name/email, a full oauth2 replace, or a partial one.

A full `oauth2` is a new grant (as an import of the same id); `partial: true` merges the
given token fields over the stored grant (it still needs `auth`, as EmailEngine's rule);
name and email alone change only those fields.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.account_record import F
from service.accounts import Account
from service.core import Core
from service.web.accounts import email_field, import_grant, mail_protocols
from service.web.appkeys import CORE
from service.web.io import account_param, authorize, json_body, json_response, known_query

UPDATE_FIELDS = {"name", "email", "oauth2", "imap", "smtp"}


async def update_account(request: web.Request) -> web.Response:
    """Change an account's name/email or its grant; answers {account}."""
    account_id = account_param(request)
    await authorize(request, "api", account_id)
    known_query(request, set())
    body = await json_body(request)
    validate.no_unknown(body, UPDATE_FIELDS)
    mail_protocols(body)
    core = request.app[CORE]
    account = await core.accounts.require(account_id)
    name = validate.string(body, "name", max_len=limits.NAME_MAX)
    email = email_field(body)
    if "oauth2" in body:
        oauth2 = validate.obj(body["oauth2"], "oauth2")
        if oauth2.get("partial") is True:
            oauth2 = _merged(core, account, oauth2)
        else:
            oauth2 = {k: v for k, v in oauth2.items() if k != "partial"}
        grant = {"account": account_id, "name": name or account.name, "email": email}
        await import_grant(core, {k: v for k, v in grant.items() if v is not None}, oauth2)
        return json_response({"account": account_id})
    fields = {k: v for k, v in ((F.NAME, name), (F.EMAIL, email)) if v is not None}
    if fields and not await core.accounts.update_profile(account_id, fields, core.clock.now_ms()):
        raise errors.AccountNotFound(f"no account with id {account_id!r}")
    return json_response({"account": account_id})


def _merged(core: Core, account: Account, oauth2: dict[str, Any]) -> dict[str, Any]:
    """The stored grant with the given fields over it (tokens decrypted only to re-store)."""
    if "auth" not in oauth2:
        raise errors.InvalidInput("oauth2.auth is required", details={"field": "auth"})
    stored: dict[str, Any] = {"provider": account.app}
    if account.encrypted_refresh:
        stored["refreshToken"] = core.accounts.refresh_token(account)
    if account.encrypted_access:
        stored["accessToken"] = core.accounts.access_token(account)
        if account.expires_at_ms:
            stored["expires"] = account.public()["expires"]
    stored["scopes"] = account.scopes
    given = {k: v for k, v in oauth2.items() if k != "partial"}
    return {**stored, **given}
