"""Helpers of the settings-page tests: read the CSRF token, log in, post forms."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    match = CSRF.search(html)
    assert match is not None, html[:500]
    return match.group(1)


async def csrf(client: Client, path: str = "/admin/") -> str:
    """GET a page and return its CSRF token."""
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    return csrf_of(await resp.text())


async def login(client: Client, password: str = PASSWORD, user: str = "admin") -> ClientResponse:
    """Log in through the login form (without following the redirect)."""
    token = await csrf(client, "/admin/login")
    form = {"csrf": token, "user": user, "password": password, "next": "/admin/"}
    return await client.post("/admin/login", data=form, allow_redirects=False)


async def post_form(
    client: Client, path: str, fields: dict[str, Any], page: str | None = None
) -> ClientResponse:
    """POST a form with the CSRF token of `page` (default: the same path), no redirects."""
    token = await csrf(client, page or path)
    return await client.post(path, data={"csrf": token, **fields}, allow_redirects=False)
