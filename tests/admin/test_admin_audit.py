"""The audit trail of the settings pages: logins (failed too), changes, the /admin/audit page."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.audit_query import AuditFilter
from service.core import Core
from service.web.appkeys import CORE
from tests.support.admin import PASSWORD, login, post_form

Client = TestClient[web.Request, web.Application]
SHOWN = re.compile(r"<small>(req-\d+)</small>")


async def records(client: Client, **query: Any) -> list[dict[str, Any]]:
    """The trail's newest records (flushed first), read as GET /v1/audit does."""
    core = client.app[CORE]
    await core.audit.flush()
    page = await core.audit_reader.page(AuditFilter(**query), 100, None, 0)
    return page.records


async def test_logins_and_login_failures_are_recorded(client: Client, password: str) -> None:
    """A failed and a successful admin login are each recorded, with the client address."""
    assert (await login(client, "not-the-password")).status == 401
    assert (await login(client, password)).status == 303
    found = await records(client)
    assert [r["action"] for r in found] == ["admin.login", "admin.login_failed"]
    assert all(r["via"] == "admin" and r["client"] == "127.0.0.1" for r in found)
    assert found[1]["status"] == 401
    assert "not-the-password" not in str(found) and PASSWORD not in str(found)


async def test_admin_changes_are_recorded(operator: Client, core: Core) -> None:
    """Creating and revoking an API token and rotating the webhook secret on the pages."""
    form = {"scopes": ["audit"], "description": "siem", "account": "", "expires": ""}
    created = await post_form(operator, "/admin/tokens", form)
    assert created.status == 200
    (meta,) = await core.tokens.all()
    resp = await post_form(operator, f"/admin/tokens/{meta.id}/revoke", {}, page="/admin/tokens")
    assert resp.status == 303
    resp = await post_form(operator, "/admin/settings/webhook-secret", {}, page="/admin/settings")
    assert resp.status in (200, 303), await resp.text()
    found = await records(operator)
    assert [r["action"] for r in found][:3] == [
        "webhook_secret.rotate",
        "api_token.delete",
        "api_token.create",
    ]
    assert found[1]["target"] == meta.id
    assert all(r["actor"] == "admin:admin" for r in found)


async def test_audit_page_lists_filters_and_pages(operator: Client, core: Core) -> None:
    """/admin/audit shows recent records, filters them, and links to older ones."""
    for n in range(60):
        core.audit.token_answer(
            account="acct-a" if n % 2 else "acct-b",
            api_token=("tid", "reporting job"),
            client="198.51.100.9",
            request_id=f"req-{n}",
            source="refresh",
        )
    await core.audit.flush()
    page = await operator.get("/admin/audit")
    html = await page.text()
    assert page.status == 200 and 'href="/admin/audit" aria-current="page"' in html
    assert "req-59" in html and "reporting job" in html and "198.51.100.9" in html
    assert 'id="older"' in html
    older = html.split('id="older"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    second = await (await operator.get(older)).text()
    first_ids, second_ids = set(SHOWN.findall(html)), set(SHOWN.findall(second))
    assert len(first_ids) == 50 and len(second_ids) == 10 and not first_ids & second_ids
    only_b = await (await operator.get("/admin/audit?account=acct-b")).text()
    assert "acct-a" not in only_b.split("<table", 1)[1] and "req-58" in only_b
    bad = await operator.get("/admin/audit?from=yesterday")
    assert bad.status == 400 and "ISO 8601" in await bad.text()
