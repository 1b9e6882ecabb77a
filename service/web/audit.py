"""GET /v1/audit: the audit trail, newest first, filtered and paged by cursor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from multidict import MultiMapping

from service import errors, validate
from service.audit_query import AuditFilter, AuditPage, parse_cursor
from service.clock import parse_iso_ms
from service.limits import AUDIT_LIMIT
from service.web.appkeys import CORE
from service.web.audit_actions import ACTION_NAMES
from service.web.io import authorize, json_response, known_query

QUERY = {"account", "token", "action", "from", "to", "cursor", "limit"}


def filled(query: MultiMapping[str]) -> dict[str, str]:
    """A form's query without its blank fields (the page's filter form sends them all)."""
    return {name: value for name, value in query.items() if value}


def audit_filter(query: Mapping[str, str]) -> AuditFilter:
    """The filters of a query; 400 with the field for a malformed one (a blank one too)."""
    account, action = query.get("account"), query.get("action")
    if action is not None and action not in ACTION_NAMES:
        raise errors.InvalidInput(
            f"action must be one of {', '.join(ACTION_NAMES)}", details={"field": "action"}
        )
    return AuditFilter(
        account=validate.account_id(account) if account is not None else None,
        api_token=query.get("token") or None,
        action=action,
        from_ms=_time(query.get("from"), "from"),
        to_ms=_time(query.get("to"), "to"),
    )


def _time(raw: str | None, field: str) -> int | None:
    if raw is None:
        return None
    try:
        return parse_iso_ms(raw)
    except ValueError:
        raise errors.InvalidInput(
            f"{field} must be an ISO 8601 time with a zone", details={"field": field}
        ) from None


async def read_page(request: web.Request, query: Mapping[str, str]) -> AuditPage:
    """The page a query asks for (filters, cursor, limit) from the trail of this app."""
    flt = audit_filter(query)
    limit = validate.integer(query.get("limit"), "limit", AUDIT_LIMIT)
    cursor = parse_cursor(query["cursor"]) if "cursor" in query else None
    core = request.app[CORE]
    oldest = core.clock.now_ms() - core.audit.retention_ms
    return await core.audit_reader.page(flt, limit, cursor, oldest)


async def list_audit(request: web.Request) -> web.Response:
    """The audit records matching the query, newest first; `next` is the cursor of more."""
    await authorize(request, "audit")
    known_query(request, QUERY)
    page = await read_page(request, request.query)
    body: dict[str, Any] = {"records": page.records, "next": page.cursor}
    return json_response(body, headers={"Cache-Control": "no-store"})
