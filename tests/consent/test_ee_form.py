"""The hosted link with EmailEngine's fields, its app chooser, and a second try after a no."""

from __future__ import annotations

import asyncio
import re

from service.clock import ManualClock, iso
from service.core import Core
from tests.support.consent import (
    Client,
    authorize_as,
    base_url,
    follow,
    make_link,
    open_link,
    query_of,
    start_form,
)
from tests.support.idp import Idp


async def _account(client: Client, admin: dict[str, str], account: str) -> dict[str, object]:
    resp = await client.get(f"/v1/account/{account}", headers=admin)
    assert resp.status == 200, await resp.text()
    body: dict[str, object] = await resp.json()
    return body


async def _second_app(core: Core, idp: Idp) -> None:
    body = {
        "id": "flow2",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
    }
    await core.apps.create(body, iso(0))


async def test_link_survives_backing_out(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """A user who says no at the provider gets the link back and connects on a second try."""
    link = await make_link(flow_client, flow_admin, account="backout", ttl=300)
    opened = await open_link(flow_client, link)
    callback = await asyncio.to_thread(flow_idp.deny_authorization, opened.headers["Location"])
    denied = await follow(flow_client, callback)
    page = await denied.text()
    assert denied.status == 400 and 'id="code">ConsentDenied<' in page
    retry = re.search(r'id="retry" href="([^"]+)"', page)
    assert retry is not None
    again = await open_link(flow_client, retry.group(1).replace("&amp;", "&"))
    assert again.status == 303
    done = await follow(flow_client, await authorize_as(flow_idp, again.headers["Location"], "b"))
    assert done.status == 303 and query_of(done.headers["Location"])["state"] == "new"
    assert (await _account(flow_client, flow_admin, "backout"))["user"] == "b@example.test"
    used = await follow(flow_client, link)
    assert used.status == 410 and "LinkUsed" in await used.text()


async def test_no_retry_once_the_link_expired(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_clock: ManualClock,
) -> None:
    """Backing out after the link's lifetime offers no second try; the link stays spent."""
    link = await make_link(flow_client, flow_admin, account="late", ttl=60)
    opened = await open_link(flow_client, link)
    callback = await asyncio.to_thread(flow_idp.deny_authorization, opened.headers["Location"])
    flow_clock.advance(61_000)
    try:
        denied = await follow(flow_client, callback)
        page = await denied.text()
        assert denied.status == 400 and 'id="retry"' not in page
    finally:
        flow_clock.advance(-61_000)
    assert (await follow(flow_client, link)).status == 410


async def test_emailengine_fields_are_kept(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """type, name, email and expectedEmail (EmailEngine's names) shape the connected account."""
    link = await make_link(
        flow_client,
        flow_admin,
        account=" ee-form-1 ",
        type=flow_app,
        name="Form user",
        email="box@example.test",
        expectedEmail="g@example.test",
        syncFrom="2026-01-01T00:00:00Z",
        path=["INBOX"],
        delegated="N",
    )
    opened = await open_link(flow_client, link)
    assert query_of(opened.headers["Location"])["login_hint"] == "g@example.test"
    done = await follow(flow_client, await authorize_as(flow_idp, opened.headers["Location"], "g"))
    assert query_of(done.headers["Location"])["account"] == "ee-form-1"
    account = await _account(flow_client, flow_admin, "ee-form-1")
    assert account["name"] == "Form user" and account["email"] == "box@example.test"
    assert account["user"] == "g@example.test"


async def test_delegated_asks_for_the_shared_mailbox(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """Delegated without email: the page asks for the shared mailbox, kept as delegatedUser."""
    link = await make_link(flow_client, flow_admin, account=None, delegated=True, type=flow_app)
    page = await (await follow(flow_client, link)).text()
    assert 'name="email"' in page
    form = start_form(page)
    bad = await flow_client.post("/oauth/start", data=form, allow_redirects=False)
    assert bad.status == 400  # no address given; the link is spent only by a good POST
    form["email"] = "shared@example.test"
    started = await flow_client.post("/oauth/start", data=form, allow_redirects=False)
    assert started.status == 303, await started.text()
    done = await follow(flow_client, await authorize_as(flow_idp, started.headers["Location"], "d"))
    account = await _account(flow_client, flow_admin, query_of(done.headers["Location"])["account"])
    oauth2 = account["oauth2"]
    assert isinstance(oauth2, dict)
    assert oauth2["auth"] == {"user": "d@example.test", "delegatedUser": "shared@example.test"}
    assert account["email"] == "shared@example.test"


async def test_without_an_app_the_user_chooses(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp, flow_core: Core
) -> None:
    """No app and several apps: the page lists them and the consent uses the chosen one."""
    await _second_app(flow_core, flow_idp)
    link = await make_link(flow_client, flow_admin, account="chooser")
    page = await (await follow(flow_client, link)).text()
    assert 'value="flow"' in page and 'value="flow2"' in page
    form = {**start_form(page), "app": "flow2"}
    started = await flow_client.post("/oauth/start", data=form, allow_redirects=False)
    assert started.status == 303, await started.text()
    done = await follow(flow_client, await authorize_as(flow_idp, started.headers["Location"], "c"))
    assert done.status == 303
    assert (await _account(flow_client, flow_admin, "chooser"))["app"] == "flow2"


async def test_emailengine_fields_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str
) -> None:
    """Type imap, app and type disagreeing, bad delegated, syncFrom, path, email: 400."""
    cases: list[dict[str, object]] = [
        {"type": "imap"},
        {"type": flow_app, "app": "other"},
        {"delegated": "maybe"},
        {"syncFrom": "yesterday"},
        {"path": [1]},
        {"email": "not-an-address"},
        {"expectedEmail": "a@example.test", "expectedUser": "b@example.test"},
    ]
    for fields in cases:
        body = {"redirectUrl": f"{base_url(flow_client)}/done", **fields}
        resp = await flow_client.post("/v1/authentication/form", json=body, headers=flow_admin)
        assert resp.status == 400, (fields, await resp.text())
