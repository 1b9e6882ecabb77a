"""Rendering admin pages: the shared context (CSRF token, flash message), redirects, forms."""

from __future__ import annotations

from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from service import errors
from service.web.admin.session import csrf_token


async def page(
    request: web.Request, template: str, context: dict[str, Any], status: int = 200
) -> web.Response:
    """Render templates/admin/<template> with the CSRF token, navigation and flash message."""
    session = await get_session(request)
    shared = {
        "csrf": csrf_token(session),
        "flash": session.pop("flash", None),
        "nav": True,
        "path": request.path,
    }
    return aiohttp_jinja2.render_template(
        f"admin/{template}", request, {**shared, **context}, status=status
    )


async def invalid(
    request: web.Request, template: str, context: dict[str, Any], exc: errors.ApiError
) -> web.Response:
    """Render a form again with the error's message, the field it names and what was typed."""
    details = exc.details or {}
    fields = details.get("fields") or ([details["field"]] if "field" in details else [])
    error = {"message": exc.message, "fields": fields}
    response = await page(request, template, {**context, "error": error}, status=exc.status)
    response.headers.update(exc.headers)
    return response


async def flash_redirect(request: web.Request, location: str, message: str) -> web.HTTPSeeOther:
    """A 303 to `location` that shows `message` once on the next page."""
    session = await get_session(request)
    session["flash"] = message
    return web.HTTPSeeOther(location)


def words(text: str) -> list[str]:
    """Entries of a text box: one per line or separated by spaces."""
    return text.split()


async def form_of(request: web.Request, files: tuple[str, ...] = ()) -> dict[str, str]:
    """The POSTed form as text fields, each stripped; of files only those named, as text."""
    form = await request.post()
    fields = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
    for name in files:
        upload = form.get(name)
        if isinstance(upload, web.FileField):  # not text: refused where the value is checked
            fields[name] = upload.file.read().decode(errors="replace").strip()
    return fields
