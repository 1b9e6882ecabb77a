"""Helpers of the consent tests: start a consent, follow redirects, read events.

The test client keeps cookies like a browser: the consent is bound to its cookie jar.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import urllib.error
import urllib.request
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.core import Core
from service.web.appkeys import CORE
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
APP = "flow"


def base_url(client: Client) -> str:
    """TOKENBROKER_BASE_URL of the test app."""
    return client.app[CORE].config.base_url


async def api_start(client: Client, headers: dict[str, str], **fields: Any) -> str:
    """POST /v1/account with authorize: true and return the URL it answers (ours)."""
    oauth2 = {"provider": APP, "authorize": True, **fields.pop("oauth2", {})}
    resp = await client.post("/v1/account", json={**fields, "oauth2": oauth2}, headers=headers)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["redirect"])


async def start_consent(client: Client, headers: dict[str, str], **fields: Any) -> str:
    """Start a consent through the API in the client's browser; return the provider's URL.

    POST /v1/account with authorize: true, then open the URL it answers in the client, the
    browser that gets the binding cookie and is redirected to the provider.
    """
    opened = await follow(client, await api_start(client, headers, **fields))
    assert opened.status == 302, await opened.text()
    return opened.headers["Location"]


async def make_link(client: Client, headers: dict[str, str], **fields: object) -> str:
    """POST /v1/authentication/form (redirectUrl BASE_URL/done unless given); return the link."""
    body = {"redirectUrl": f"{base_url(client)}/done", **fields}
    resp = await client.post("/v1/authentication/form", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    return str((await resp.json())["url"])


def start_form(page: str) -> dict[str, str]:
    """The hidden fields (link, token) of a hosted link's start page."""
    fields = re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', page)
    return {name: html.unescape(value) for name, value in fields}


async def open_link(client: Client, link: str) -> ClientResponse:
    """Open a hosted link as a user would: GET its page, press the button (POST).

    Returns the POST's answer (303 to the provider when the link is good).
    """
    page = await follow(client, link)
    assert page.status == 200, await page.text()
    form = start_form(await page.text())
    return await client.post("/oauth/start", data=form, allow_redirects=False)


async def follow(client: Client, url: str) -> ClientResponse:
    """GET a URL of the test app (as the browser would), without following redirects."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == base_url(client), url
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    return await client.get(path, allow_redirects=False)


async def authorize_as(idp: Idp, consent_url: str, sub: str) -> str:
    """Log in as `sub` and approve at the provider; return the redirect to our callback."""
    return await asyncio.to_thread(idp.complete_authorization, consent_url, sub)


def query_of(url: str) -> dict[str, str]:
    """The query parameters of `url` (the last value of each)."""
    return {k: v[-1] for k, v in parse_qs(urlsplit(url).query).items()}


def userinfo(idp: Idp, access_token: str) -> tuple[int, dict[str, Any]]:
    """Call the provider's userinfo endpoint with an access token (is the token usable?)."""
    request = urllib.request.Request(
        idp.userinfo_url, headers={"Authorization": f"Bearer {access_token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {}


async def events(redis: Redis, core: Core, account: str) -> list[dict[str, Any]]:
    """The events recorded in the account's partition stream, oldest first."""
    stream = core.keys.events(core.keys.partition_of(account))
    entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream))
    return [json.loads(fields["payload"]) for _, fields in entries]


async def connect(
    client: Client, headers: dict[str, str], idp: Idp, account: str, sub: str | None = None
) -> ClientResponse:
    """Run the whole consent for `account` as user `sub` (default: the account id).

    Returns our callback's answer.
    """
    consent_url = await start_consent(client, headers, account=account)
    return await follow(client, await authorize_as(idp, consent_url, sub or account))
