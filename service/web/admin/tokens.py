"""Admin pages of API tokens: create (shown once), list, revoke."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from service import errors, limits, validate
from service.apitokens import SCOPES
from service.clock import parse_iso_ms
from service.web.admin.render import flash_redirect, form_of, invalid, page
from service.web.admin.session import admin_page
from service.web.appkeys import CORE


async def _context(request: web.Request, values: dict[str, Any]) -> dict[str, Any]:
    return {"tokens": await request.app[CORE].tokens.all(), "scopes": SCOPES, "values": values}


@admin_page
async def list_tokens(request: web.Request) -> web.StreamResponse:
    """Every token's metadata and the create form."""
    return await page(request, "tokens.html", await _context(request, {"scopes": ["api"]}))


def _expiry(text: str) -> int | None:
    if not text:
        return None
    try:
        return parse_iso_ms(text)
    except ValueError:
        raise errors.InvalidInput(
            "expires must be an ISO 8601 time such as 2030-01-01T00:00:00Z",
            details={"field": "expires"},
        ) from None


@admin_page
async def create_token(request: web.Request) -> web.StreamResponse:
    """Create a token and show it on this answer only."""
    core, form = request.app[CORE], await form_of(request)
    scopes = [s for s in (await request.post()).getall("scopes", []) if isinstance(s, str)]
    values = {**form, "scopes": scopes}
    try:
        if not scopes:
            raise errors.InvalidInput("choose at least one scope", details={"field": "scopes"})
        account = validate.account_id(form["account"]) if form.get("account") else None
        expires = _expiry(form.get("expires", ""))
        description = form.get("description", "")[: limits.DESCRIPTION_MAX] or None
        resources = form.get("resources", "").replace(",", " ").split() or None
        token, meta = await core.tokens.create(
            scopes, account, description, expires, core.clock.now_ms(), resources
        )
    except errors.ApiError as exc:
        return await invalid(request, "tokens.html", await _context(request, values), exc)
    context = await _context(request, {"scopes": ["api"]})
    return await page(request, "tokens.html", {**context, "new_token": token, "new_meta": meta})


@admin_page
async def revoke_token(request: web.Request) -> web.StreamResponse:
    """Revoke a token by id."""
    token_id = request.match_info["id"]
    await request.app[CORE].tokens.revoke(token_id)
    raise await flash_redirect(request, "/admin/tokens", f"API token {token_id} revoked.")
