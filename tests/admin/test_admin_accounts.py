"""Settings pages: accounts (list, connect, refresh, check, delete), tokens, deliveries, stats."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.accounts import AccountWrite
from service.clock import iso
from service.core import Core
from service.web.appkeys import CORE
from service.webhooks.deliveries import Deliveries, Delivery
from tests.support.admin import login, post_form
from tests.support.dovecot import Dovecot, dovecot, import_mailbox, mail_app
from tests.support.idp import Idp

__all__ = ["dovecot"]  # the fixture, used by name
Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]


async def add_accounts(core: Core, app: str, count: int) -> None:
    """Store `count` accounts directly (tokens are never shown, so any will do)."""
    now = core.clock.now_ms()
    for n in range(count):
        write = AccountWrite(
            app=app,
            provider="oidc",
            user=f"user{n}@example.test",
            access_token="at-secret",
            refresh_token=f"rt-secret-{n}",
            scopes=[],
        )
        await core.accounts.save(f"acct-{n:02}", write, now + 3_600_000, now, {})


async def test_account_page_checks_the_mailbox(
    operator: Client, client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """The Check mailbox button shows IMAP and SMTP ok at Dovecot, tokenRefused once retired."""
    await mail_app(core, idp, dovecot, mailApiUrl=None)
    minted = await import_mailbox(client, admin, idp)
    path = "/admin/accounts/alice"
    resp = await post_form(operator, f"{path}/verify", {}, page=path)
    passed = await resp.text()
    assert resp.status == 200 and "Mailbox check: " in passed and ">passed<" in passed
    assert f"127.0.0.1:{dovecot.imap_port} (plain)" in passed
    assert f"127.0.0.1:{dovecot.submission_port} (plain)" in passed
    idp.revoke_access_token(minted["access_token"])
    failed = await (await post_form(operator, f"{path}/verify", {}, page=path)).text()
    assert ">failed<" in failed and failed.count("<code>tokenRefused</code>") == 2
    assert "notConfigured" in failed and "POST /v1/account/alice/refresh" in failed
    assert minted["access_token"] not in passed + failed


async def test_accounts_list_filter_search_paging(
    operator: Client, core: Core, oidc_app: str
) -> None:
    """25 a page, filtered by status, searched by id or user; no token on any page."""
    await add_accounts(core, oidc_app, 30)
    first = await (await operator.get("/admin/accounts")).text()
    assert "30 account(s)" in first and "acct-24" in first and "acct-25" not in first
    assert "Page 1 of 2" in first
    second = await (await operator.get("/admin/accounts?page=1")).text()
    assert "acct-29" in second and "acct-00" not in second
    found = await (await operator.get("/admin/accounts?q=USER17")).text()
    assert "1 account(s)" in found and "acct-17" in found
    reauth = await (await operator.get("/admin/accounts?status=reauth_required")).text()
    assert "0 account(s)" in reauth
    for page in (first, second, found):
        assert "secret" not in page


async def test_account_page_refresh_and_delete(
    operator: Client, core: Core, import_account: Importer
) -> None:
    """Details without tokens; Refresh now goes to the provider; Delete is confirmed and revokes."""
    minted = await import_account("example")
    path = "/admin/accounts/example"
    page = await (await operator.get(path)).text()
    assert "example@example.test" in page and "active" in page
    assert minted["access_token"] not in page and minted["refresh_token"] not in page
    resp = await post_form(operator, f"{path}/refresh", {}, page=path)
    assert resp.status == 303
    after = await (await operator.get(path)).text()
    assert "Token refreshed." in after
    account = await core.accounts.require("example")
    assert core.accounts.access_token(account) not in after
    assert "Delete the account example?" in await (await operator.get(f"{path}/delete")).text()
    resp = await post_form(operator, f"{path}/delete", {}, page=f"{path}/delete")
    assert resp.status == 303 and await core.accounts.get("example") is None
    listing = await (await operator.get("/admin/accounts")).text()
    assert "Account example deleted (refresh token revoked at the provider)." in listing


async def test_connect_form_errors_keep_input(operator: Client, oidc_app: str) -> None:
    """A bad account id on the connect form is shown (400) with what was typed."""
    form = {"account": "no spaces allowed", "app": oidc_app}
    resp = await post_form(operator, "/admin/accounts/connect", form, page="/admin/accounts")
    body = await resp.text()
    assert resp.status == 400 and 'value="no spaces allowed"' in body


async def test_connect_through_the_consent_flow(site: Client, site_idp: Idp) -> None:
    """Connect account starts the same consent as the API; the user lands on the account page."""
    core = site.app[CORE]
    body = {
        "id": "idp",
        "provider": "oidc",
        "clientId": site_idp.client_id,
        "clientSecret": site_idp.client_secret,
        "issuer": site_idp.issuer,
        "additionalScopes": ["mail.read"],
    }
    await core.apps.create(body, iso(core.clock.now_ms()))
    assert (await login(site)).status == 303
    form = {"account": "connected", "app": "idp"}
    resp = await post_form(site, "/admin/accounts/connect", form, page="/admin/accounts")
    start = urlsplit(resp.headers["Location"])
    assert resp.status == 303 and start.path == "/oauth/start"  # it binds this browser
    opened = await site.get(f"{start.path}?{start.query}", allow_redirects=False)
    assert opened.status == 302 and opened.headers["Location"].startswith(site_idp.issuer)
    callback = await asyncio.to_thread(
        site_idp.complete_authorization, opened.headers["Location"], "alice"
    )
    parts = urlsplit(callback)
    landed = await site.get(f"{parts.path}?{parts.query}", allow_redirects=False)
    assert landed.status == 303, await landed.text()
    target = urlsplit(landed.headers["Location"])
    assert target.path == "/admin/accounts/connected"
    page = await (await site.get(f"{target.path}?{target.query}")).text()
    assert "The account is connected." in page and 'id="account-status">active' in page


async def test_tokens_created_shown_once_and_revoked(operator: Client, core: Core) -> None:
    """A new token is on the create answer only, works on the API, and revoking stops it."""
    form = {"scopes": ["api"], "description": "reporting", "account": "", "expires": ""}
    resp = await post_form(operator, "/admin/tokens", form)
    body = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    (meta,) = await core.tokens.all()
    token = body.split('id="new-token">')[1].split("<")[0]
    assert len(token) == 64 and (await core.tokens.find(token)) is not None
    listing = await (await operator.get("/admin/tokens")).text()
    assert "reporting" in listing and token not in listing
    bearer = {"Authorization": f"Bearer {token}"}
    assert (await operator.get("/v1/settings", headers=bearer)).status == 200
    path = f"/admin/tokens/{meta.id}/revoke"
    resp = await post_form(operator, path, {}, page="/admin/tokens")
    assert resp.status == 303
    assert (await operator.get("/v1/settings", headers=bearer)).status == 401


async def test_tokens_limited_to_resources(operator: Client, core: Core) -> None:
    """The form's resources limit the token (listed); a bad name is shown with the input kept."""
    form = {"scopes": ["oauth-tokens"], "description": "imap", "resources": "outlook graph"}
    resp = await post_form(operator, "/admin/tokens", form)
    assert resp.status == 200, await resp.text()
    (meta,) = await core.tokens.all()
    assert meta.resources == ("outlook", "graph")
    listing = await (await operator.get("/admin/tokens")).text()
    assert "<td>outlook, graph</td>" in listing
    resp = await post_form(operator, "/admin/tokens", {**form, "resources": "sharepoint"})
    body = await resp.text()
    assert resp.status == 400 and 'value="sharepoint"' in body, body


async def test_token_form_errors_keep_input(operator: Client, core: Core) -> None:
    """No scope, a bad account id or a bad expiry is shown (400) with what was typed."""
    for fields, message in (
        ({"account": ""}, "choose at least one scope"),
        ({"scopes": ["api"], "account": "bad id!"}, "account"),
        ({"scopes": ["api"], "expires": "next tuesday"}, "ISO 8601"),
    ):
        form = {"description": "typed description", **fields}
        resp = await post_form(operator, "/admin/tokens", form)
        body = await resp.text()
        assert resp.status == 400 and message in body, body
        assert 'value="typed description"' in body and 'id="new-token"' not in body
    assert await core.tokens.all() == []


async def test_deliveries_page_and_redeliver(operator: Client, core: Core) -> None:
    """Dead letters are listed with their last error and can be queued again."""
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    now = core.clock.now_ms()
    payload = {"id": "msg_dead1", "event": "accountAdded", "date": iso(now), "account": "a"}
    item = Delivery(core.keys.outboxes()[0], "msg_dead1", orjson.dumps(payload).decode())
    item.attempts.append({"date": iso(now), "status": 500, "error": None, "durationMs": 3})
    assert await deliveries.failed(item, None, now) == "dead"
    page = await (await operator.get("/admin/deliveries")).text()
    assert "msg_dead1" in page and "HTTP 500" in page
    path = "/admin/deliveries/msg_dead1/redeliver"
    resp = await post_form(operator, path, {}, page="/admin/deliveries")
    assert resp.status == 303
    assert await deliveries.list("failed", 10) == []
    resp = await post_form(operator, path, {}, page="/admin/deliveries")
    assert resp.status == 404 and resp.content_type == "text/html"


async def test_dashboard(operator: Client, core: Core, import_account: Importer) -> None:
    """Accounts by status, the endpoint state, webhook backlog and the refresh schedule."""
    await import_account("example")
    page = await (await operator.get("/admin/")).text()
    assert 'id="active-count">1<' in page and "Disabled" in page and "0 dead letters" in page


async def test_dashboard_counts_live_workers(operator: Client, core: Core) -> None:
    """Workers whose heartbeat reached Redis within a minute are counted; stale ones are not."""
    now = core.clock.now_ms()
    await core.redis.hset(core.keys.workers, mapping={"w1": now - 5_000, "w2": now - 600_000})
    page = await (await operator.get("/admin/")).text()
    assert "1 worker reported in the last minute" in page


async def test_grants_ending_within_a_week_listed(
    operator: Client, core: Core, oidc_app: str, import_account: Importer
) -> None:
    """The accounts page and the dashboard list a testing app's grant; its page shows the end."""
    app = await core.apps.require(oidc_app)
    await core.apps.update(app, {"publishingStatus": "testing"}, iso(core.clock.now_ms()))
    await import_account("dying")
    await add_accounts(core, oidc_app, 1)  # saved without a deadline
    deadline = iso((await core.accounts.require("dying")).grant_deadline_ms or 0)
    for path in ("/admin/accounts", "/admin/"):
        page = await (await operator.get(path)).text()
        section = page.split('id="grants-expiring"', 1)[1].split("</section>", 1)[0]
        assert "dying" in section and deadline in section, path
        assert "acct-00" not in section
    detail = await (await operator.get("/admin/accounts/dying")).text()
    assert 'id="grant-deadline"' in detail and "publishingStatus:testing" in detail
