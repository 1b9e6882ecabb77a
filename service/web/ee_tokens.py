"""API tokens over HTTP in EmailEngine's shapes: list, create (shown once), show, delete.

Every route needs operator authority: an unbound token with the `*` scope. A token is
answered once, by the create; never again by any route.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.apitokens import ApiToken
from service.web.appkeys import CORE
from service.web.io import authorize, json_body, json_response, known_query

CREATE_FIELDS = {"account", "description", "scopes", "resources"}
TOKEN = re.compile(r"[0-9a-f]{1,64}")  # ids are 16 hex digits, tokens 64


def token_param(request: web.Request) -> str:
    """The route's {token}: a token id, or a token on the deprecated delete."""
    value = request.match_info["token"]
    if not TOKEN.fullmatch(value):
        raise errors.InvalidInput("token must be 1-64 hex digits", details={"field": "token"})
    return value


def token_view(token: ApiToken) -> dict[str, Any]:
    """One token as EmailEngine lists it, plus ours (expires, lastUsed); never the token."""
    public = token.public()
    return {**public, "access": {"time": public["lastUsed"], "ip": None}}


async def _operator(request: web.Request) -> None:
    await authorize(request, "*")


async def list_tokens(request: web.Request) -> web.Response:
    """Every token (or one account's), by page, as {account, total, pages, page, tokens}."""
    await _operator(request)
    known_query(request, {"account", "page", "pageSize"})
    account = request.query.get("account")
    if account is not None:
        validate.account_id(account)
    page = validate.integer(request.query.get("page"), "page", limits.PAGE)
    size = validate.integer(request.query.get("pageSize"), "pageSize", limits.PAGE_SIZE)
    every = reversed(await request.app[CORE].tokens.all())  # newest first, as EmailEngine
    tokens = [t for t in every if account in (None, t.account)]
    return json_response(
        {
            "account": account,
            "total": len(tokens),
            "pages": -(-len(tokens) // size),
            "page": page,
            "tokens": [token_view(t) for t in tokens[page * size : (page + 1) * size]],
        }
    )


async def account_tokens(request: web.Request) -> web.Response:
    """The tokens bound to one account, as {tokens} (EmailEngine's older listing)."""
    await _operator(request)
    known_query(request, set())
    account = validate.account_id(request.match_info["account"])
    every = reversed(await request.app[CORE].tokens.all())
    tokens = [t for t in every if t.account == account]
    return json_response({"tokens": [token_view(t) for t in tokens]})


async def create_token(request: web.Request) -> web.Response:
    """Create a token: {token, id}, the only time the token is shown."""
    await _operator(request)
    known_query(request, set())
    body = await json_body(request)
    validate.no_unknown(body, CREATE_FIELDS)
    core = request.app[CORE]
    account = validate.string(body, "account", max_len=limits.ACCOUNT_ID_MAX)
    if account is not None:
        await core.accounts.require(validate.account_id(account))
    scopes = body.get("scopes")
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise errors.InvalidInput("scopes must be a list", details={"field": "scopes"})
    if "api" in scopes and "oauth-tokens" not in scopes:
        scopes = [*scopes, "oauth-tokens"]  # EmailEngine's `api` includes the token endpoint
    description = validate.string(body, "description", max_len=limits.DESCRIPTION_MAX)
    resources = body.get("resources")
    if resources is not None and (
        not isinstance(resources, list) or not all(isinstance(r, str) for r in resources)
    ):
        raise errors.InvalidInput("resources must be a list", details={"field": "resources"})
    token, meta = await core.tokens.create(
        scopes, account, description, None, core.clock.now_ms(), resources
    )
    return json_response({"token": token, "id": meta.id})


async def get_token(request: web.Request) -> web.Response:
    """One token's metadata by id."""
    await _operator(request)
    known_query(request, set())
    token_id = token_param(request)
    for token in await request.app[CORE].tokens.all():
        if token.id == token_id:
            return json_response(token_view(token))
    raise errors.TokenNotFound("Requested access token was not found")


async def delete_token(request: web.Request) -> web.Response:
    """Delete a token by id: {deleted: true}, or false when there was none."""
    await _operator(request)
    known_query(request, set())
    return json_response({"deleted": await _revoke(request, token_param(request))})


async def delete_token_by_value(request: web.Request) -> web.Response:
    """Delete a token given the token itself (EmailEngine's deprecated route)."""
    await _operator(request)
    known_query(request, set())
    found = await request.app[CORE].tokens.find(token_param(request))
    deleted = found is not None and await _revoke(request, found.id)
    return json_response({"deleted": deleted})


async def _revoke(request: web.Request, token_id: str) -> bool:
    try:
        await request.app[CORE].tokens.revoke(token_id)
    except errors.TokenNotFound:
        return False
    return True
