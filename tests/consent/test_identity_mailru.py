"""Mail.ru's identity: its userinfo (token in the query) names the email and the pinned id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service import errors
from service.apps import App
from service.clock import SystemClock
from service.oauth.claims import MAIL_RU_ISSUER, Identity, mailru_identity
from service.oauth.discovery import Discovery
from service.oauth.identity import IdentityVerifier

TOKEN = "mailru-access-token"
PEOPLE = {TOKEN: {"id": "1234567890", "email": "a.fixture@mail.ru", "name": "A"}}


@pytest.fixture
async def mailru() -> AsyncIterator[str]:
    """A loopback server answering as oauth.mail.ru/userinfo does; yields its URL."""

    async def userinfo(request: web.Request) -> web.Response:
        if "Authorization" in request.headers:
            return web.json_response({"error": "token in a header"}, status=400)
        found = PEOPLE.get(request.query.get("access_token", ""))
        if found is None:
            return web.json_response({"error": "invalid_token", "error_code": 5}, status=401)
        return web.json_response(found)

    app = web.Application()
    app.router.add_get("/userinfo", userinfo)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("/userinfo"))
    finally:
        await server.close()


async def identify(userinfo_url: str, token: str) -> Identity:
    """The identity a mailRu app whose userinfo is `userinfo_url` finds for `token`."""
    app = App(id="mr", provider="mailRu", client_id="c", fields={"userinfoUrl": userinfo_url})
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession() as http:
        verifier = IdentityVerifier(http, Discovery(http, timeout), SystemClock(), timeout)
        return await verifier.identify(app, None, token, "nonce")


async def test_mailru_user_is_its_email_pinned_by_id(mailru: str) -> None:
    """The user is the userinfo's email; the pin is Mail.ru's id and issuer."""
    found = await identify(mailru, TOKEN)
    assert found.user == "a.fixture@mail.ru"
    assert dict(found.pin) == {"sub": "1234567890", "iss": MAIL_RU_ISSUER}


async def test_mailru_refusal_is_identity_unavailable(mailru: str) -> None:
    """A token Mail.ru does not know: IdentityUnavailable, never a guessed user."""
    with pytest.raises(errors.IdentityUnavailable):
        await identify(mailru, "other-token")


def test_mailru_needs_email_and_id() -> None:
    """Without an email (or with no id) there is no identity; a numeric id is kept as text."""
    assert mailru_identity({"id": "1"}, None) is None
    assert mailru_identity({"email": "x@mail.ru"}, None) is None
    found = mailru_identity({"id": 7, "email": "x@mail.ru"}, None)
    assert found is not None and found.pin["sub"] == "7"
