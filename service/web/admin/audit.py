"""Admin page of the audit trail: recent records, the API's filters, paged by cursor."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from service import errors
from service.web.admin.render import page
from service.web.admin.session import admin_page
from service.web.audit import filled, read_page
from service.web.audit_actions import ACTION_NAMES

FILTERS = ("account", "token", "action", "from", "to")


@admin_page
async def list_audit(request: web.Request) -> web.StreamResponse:
    """The newest records matching the form's filters; `Older` goes on from the last shown."""
    values = {name: request.query.get(name, "") for name in FILTERS}
    context: dict[str, Any] = {
        "values": values,
        "actions": ACTION_NAMES,
        "records": [],
        "older": None,
    }
    query = filled(request.query)  # a blank field of the form filters nothing
    try:
        found = await read_page(request, query)  # a bad filter is shown on the form
    except errors.InvalidInput as exc:
        error = {"message": exc.message, "fields": [(exc.details or {}).get("field")]}
        return await page(request, "audit.html", {**context, "error": error}, status=400)
    if found.cursor is not None:
        kept = {name: value for name, value in values.items() if value}
        context["older"] = "/admin/audit?" + urlencode({**kept, "cursor": found.cursor})
    context["records"] = found.records
    return await page(request, "audit.html", context)
