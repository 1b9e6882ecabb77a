"""Hosted consent links: signed, expiring, single-use; expectedUser; a generated account id."""

from __future__ import annotations

from urllib.parse import quote

import aiohttp

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


async def test_link_connects_once(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """The link sends the user to the provider once; a second use is 410 LinkUsed."""
    link = await make_link(
        flow_client, flow_admin, account="dave", expectedUser="Dave@Example.test", ttl=300
    )
    assert link.startswith(f"{base_url(flow_client)}/oauth/start?link=")
    opened = await open_link(flow_client, link)
    assert opened.status == 303 and opened.headers["Cache-Control"] == "no-store"
    consent_url = opened.headers["Location"]
    assert consent_url.startswith(flow_idp.authorization_url)
    assert query_of(consent_url)["login_hint"] == "Dave@Example.test"
    resp = await follow(flow_client, await authorize_as(flow_idp, consent_url, "dave"))
    assert resp.status == 303
    assert resp.headers["Location"] == f"{base_url(flow_client)}/done?account=dave&state=new"
    again = await follow(flow_client, link)
    assert again.status == 410 and "LinkUsed" in await again.text()


async def test_link_expires(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_clock: ManualClock
) -> None:
    """Past its ttl the link is 410 LinkExpired (and stays unusable); a forged one is 400."""
    link = await make_link(flow_client, flow_admin, app=flow_app, ttl=60)
    flow_clock.advance(61_000)
    resp = await follow(flow_client, link)
    assert resp.status == 410 and "LinkExpired" in await resp.text()
    flow_clock.advance(-61_000)
    assert (await follow(flow_client, link)).status == 410
    token = query_of(link)["link"]
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    resp = await flow_client.get(f"/oauth/start?link={quote(forged)}", allow_redirects=False)
    assert resp.status == 400 and "InvalidLink" in await resp.text()
    assert (await flow_client.get("/oauth/start", allow_redirects=False)).status == 400


async def test_expected_user_mismatch_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """Signing in as another user than expectedUser is 403 UserMismatch: no account."""
    expected = "erin@example.test"
    link = await make_link(flow_client, flow_admin, account="erin", expectedUser=expected)
    opened = await open_link(flow_client, link)
    callback = await authorize_as(flow_idp, opened.headers["Location"], "mallory")
    resp = await follow(flow_client, callback)
    page = await resp.text()
    assert resp.status == 403 and "UserMismatch" in page
    assert "mallory@example.test" in page and "erin@example.test" in page
    assert f'href="{base_url(flow_client)}/done?error=UserMismatch"' in page
    assert (await flow_client.get("/v1/account/erin", headers=flow_admin)).status == 404


async def test_generated_account_id(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """Without an account id (and with the only app implied) one is generated."""
    link = await make_link(flow_client, flow_admin)
    opened = await open_link(flow_client, link)
    resp = await follow(flow_client, await authorize_as(flow_idp, opened.headers["Location"], "f"))
    assert resp.status == 303
    account = query_of(resp.headers["Location"])["account"]
    shown = await flow_client.get(f"/v1/account/{account}", headers=flow_admin)
    assert shown.status == 200 and (await shown.json())["user"] == "f@example.test"


async def test_form_input_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_core: Core
) -> None:
    """Bad redirectUrl, ttl, fields or app are 4xx; no app named is the user's choice."""
    done = f"{base_url(flow_client)}/done"
    cases: list[tuple[dict[str, object], int, str]] = [
        ({}, 400, "InvalidInput"),
        ({"redirectUrl": done, "ttl": 59}, 400, "InvalidInput"),
        ({"redirectUrl": done, "ttl": "60"}, 400, "InvalidInput"),
        ({"redirectUrl": done, "colour": "red"}, 400, "InvalidInput"),
        ({"redirectUrl": done, "app": "nope"}, 404, "AppNotFound"),
        ({"redirectUrl": done, "account": "-bad"}, 400, "InvalidAccountId"),
    ]
    for body, status, code in cases:
        resp = await flow_client.post("/v1/authentication/form", json=body, headers=flow_admin)
        assert resp.status == status and (await resp.json())["code"] == code, body
    other = {"id": "other", "provider": "oidc", "clientId": "c", "clientSecret": "s"}
    await flow_core.apps.create({**other, "tokenUrl": "http://127.0.0.1:9/t"}, iso(0))
    body = {"redirectUrl": done}
    resp = await flow_client.post("/v1/authentication/form", json=body, headers=flow_admin)
    assert resp.status == 200  # the link's page offers both apps (tests/consent/test_ee_form.py)


async def test_prefetched_link_still_works(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """GETs (a mail scanner's, the user's) show a page and spend nothing; the POST spends it."""
    link = await make_link(flow_client, flow_admin, account="scanned")
    scanner = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    async with scanner, scanner.get(link, allow_redirects=False) as prefetched:
        assert prefetched.status == 200 and "LinkUsed" not in await prefetched.text()
    page = await follow(flow_client, link)
    text = await page.text()
    assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
    assert 'method="post"' in text and 'id="continue"' in text
    assert flow_idp.issuer not in text and "verifier" not in text
    started = await open_link(flow_client, link)  # a second GET of the user's, then the POST
    assert started.status == 303 and started.headers["Location"].startswith(flow_idp.issuer)
    callback = await authorize_as(flow_idp, started.headers["Location"], "scanned")
    assert (await follow(flow_client, callback)).status == 303
    again = await follow(flow_client, link)
    assert again.status == 410 and "LinkUsed" in await again.text()


async def test_start_without_the_pages_token_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """A POST without the form token, or with another browser's, is 403; the link stays usable."""
    link = await make_link(flow_client, flow_admin, account="forged")
    form = start_form(await (await follow(flow_client, link)).text())
    posts: list[dict[str, str]] = [
        {"link": form["link"]},
        {"link": form["link"], "token": "x" * 43},
    ]
    for data in posts:
        resp = await flow_client.post("/oauth/start", data=data, allow_redirects=False)
        assert resp.status == 403 and 'id="code">FormTokenInvalid<' in await resp.text()
    other = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
    url = f"{base_url(flow_client)}/oauth/start"
    async with other, other.post(url, data=form, allow_redirects=False) as resp:
        assert resp.status == 403 and "FormTokenInvalid" in await resp.text()
    wrong_type = await flow_client.post("/oauth/start", json=form, allow_redirects=False)
    assert wrong_type.status == 415
    started = await open_link(flow_client, link)
    assert started.status == 303
