"""Admin pages of accounts: list (filter, search, paging, dying grants), details, actions."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from aiohttp import web

from service import errors, limits, validate
from service.accounts import STATUSES, Account
from service.core import Core
from service.mailcheck import MailCheck
from service.refresh import Refreshed
from service.refresh_errors import refresh_error
from service.web.admin.dashboard import dying_grants
from service.web.admin.render import flash_redirect, form_of, invalid, page
from service.web.admin.session import admin_page
from service.web.appkeys import CORE
from service.web.consent import consent_request, direct_link

PAGE_SIZE = 25


async def find_accounts(
    core: Core, status: str, search: str, page_no: int
) -> tuple[int, list[Account]]:
    """One page of accounts with `status` whose id or user starts with `search` (the index)."""
    if not search:
        return await core.accounts.page(page_no, PAGE_SIZE, status)
    return await core.accounts.find(search, page_no, PAGE_SIZE, status)


@admin_page
async def list_accounts(request: web.Request) -> web.StreamResponse:
    """Accounts by page, optionally one status and a search term; the connect form."""
    core = request.app[CORE]
    status = request.query.get("status", "all")
    if status != "all" and status not in STATUSES:
        status = "all"
    search = request.query.get("q", "").strip()[: limits.SEARCH_MAX]
    page_no = validate.integer(request.query.get("page"), "page", limits.PAGE)
    total, accounts = await find_accounts(core, status, search, page_no)
    context = {
        "accounts": accounts,
        "total": total,
        "status": status,
        "statuses": STATUSES,
        "q": search,
        "page_no": page_no,
        "pages": max(1, -(-total // PAGE_SIZE)),
        "apps": await core.apps.all(),
        "values": {},
        "dying": await dying_grants(core),
    }
    return await page(request, "accounts.html", context)


@admin_page
async def connect(request: web.Request) -> web.StreamResponse:
    """Start the consent flow (as POST /v1/account with authorize does) for a new or same id."""
    core, form = request.app[CORE], await form_of(request)
    account_id = form.get("account") or secrets.token_hex(8)
    try:
        consent = await consent_request(
            core,
            account=account_id,
            app=validate.app_id(form.get("app") or None),
            redirect_url=f"{core.config.base_url}/admin/accounts/{quote(account_id, safe='')}",
            name=form.get("name") or None,
        )
        location = await direct_link(core, consent)  # binds the consent to this browser
    except errors.ApiError as exc:
        context = {"accounts": [], "total": 0, "status": "all", "statuses": STATUSES, "q": ""}
        context.update({"page_no": 0, "pages": 1, "apps": await core.apps.all(), "values": form})
        return await invalid(request, "accounts.html", context, exc)
    raise web.HTTPSeeOther(location)


async def _account(request: web.Request) -> Account:
    account_id = validate.account_id(request.match_info["account"])
    return await request.app[CORE].accounts.require(account_id)


@admin_page
async def show_account(request: web.Request) -> web.StreamResponse:
    """One account's details and actions (never a token)."""
    account = await _account(request)
    connected = request.query.get("state") in ("new", "existing")
    now_ms = request.app[CORE].clock.now_ms()
    context = {"account": account, "connected": connected, "now_ms": now_ms}
    return await page(request, "account.html", context)


@admin_page
async def refresh_account(request: web.Request) -> web.StreamResponse:
    """Refresh the account's token now and say how it went."""
    account = await _account(request)
    outcome = await request.app[CORE].refresher.refresh(account.id, 0, force=True)
    if isinstance(outcome, Refreshed):
        message = "Token refreshed."
    else:
        error = refresh_error(outcome)
        message = f"The refresh failed: {error.message} ({error.code}: {outcome.failure.error})."
    raise await flash_redirect(request, f"/admin/accounts/{quote(account.id)}", message)


@admin_page
async def verify_account(request: web.Request) -> web.StreamResponse:
    """Check the account's mailbox (IMAP, SMTP, mail API) and show the answer on its page."""
    account = await _account(request)
    core = request.app[CORE]
    check, problem = None, None
    try:
        check = await MailCheck(core).check(account.id)
    except errors.ApiError as exc:  # no token to check with (re-consent needed, provider down)
        problem = f"{exc.message} ({exc.code})"
    context = {"account": await _account(request), "connected": False}
    context.update({"now_ms": core.clock.now_ms(), "check": check, "check_problem": problem})
    return await page(request, "account.html", context)


@admin_page
async def confirm_delete_account(request: web.Request) -> web.StreamResponse:
    """Ask before deleting an account."""
    account = await _account(request)
    path = f"/admin/accounts/{quote(account.id)}"
    context = {"what": f"the account {account.id}", "action": f"{path}/delete", "back": path}
    return await page(request, "confirm.html", context)


@admin_page
async def delete_account(request: web.Request) -> web.StreamResponse:
    """Delete the account and revoke its refresh token at the provider."""
    account = await _account(request)
    _, revocation = await request.app[CORE].removal.delete(account)
    revoked = "revoked at the provider" if revocation and revocation.revoked else "not revoked"
    message = f"Account {account.id} deleted (refresh token {revoked})."
    raise await flash_redirect(request, "/admin/accounts", message)
