"""A consent finishes only in the browser that started it (the binding cookie)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from service import binding
from service.core import Core
from service.web.consent import set_binding
from tests.support.consent import (
    Client,
    api_start,
    authorize_as,
    base_url,
    follow,
    make_link,
    open_link,
    start_consent,
)
from tests.support.idp import Idp


async def in_other_browser(url: str) -> tuple[int, str]:
    """GET `url` with a cookie jar of its own (another browser): status and page."""
    jar = aiohttp.CookieJar(unsafe=True)
    async with (
        aiohttp.ClientSession(cookie_jar=jar) as other,
        other.get(url, allow_redirects=False) as resp,
    ):
        return resp.status, await resp.text()


async def test_callback_in_another_browser_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """Finishing a forwarded consent in another browser is 403 BrowserMismatch; the starter can."""
    done = f"{base_url(flow_client)}/done"
    consent_url = await start_consent(
        flow_client, flow_admin, account="bound", oauth2={"redirectUrl": done}
    )
    callback = await authorize_as(flow_idp, consent_url, "someone-else")
    status, page = await in_other_browser(callback)
    assert status == 403 and 'id="code">BrowserMismatch<' in page, page
    assert f'href="{done}?error=BrowserMismatch"' in page
    assert (await flow_client.get("/v1/account/bound", headers=flow_admin)).status == 404
    assert flow_idp.stats()["code_requests"] == 0  # the code was never exchanged
    own = await follow(flow_client, await authorize_as(flow_idp, consent_url, "bound"))
    assert own.status == 303, await own.text()
    shown = await (await flow_client.get("/v1/account/bound", headers=flow_admin)).json()
    assert shown["user"] == "bound@example.test"


async def test_hosted_link_bound_to_the_browser_that_pressed_the_button(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """A hosted link's consent, forwarded after the button was pressed, fails elsewhere."""
    opened = await open_link(flow_client, await make_link(flow_client, flow_admin, account="hb"))
    callback = await authorize_as(flow_idp, opened.headers["Location"], "hb")
    status, page = await in_other_browser(callback)
    assert status == 403 and "BrowserMismatch" in page
    assert (await follow(flow_client, callback)).status == 303


async def test_api_url_binds_the_browser_that_opens_it(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """The API's redirect is our URL: it sets the cookie and sends that browser on, once."""
    url = await api_start(flow_client, flow_admin, account="api-bound")
    assert url.startswith(f"{base_url(flow_client)}/oauth/start?link=")
    path = url.removeprefix(base_url(flow_client))
    assert (await flow_client.head(path, allow_redirects=False)).status == 200  # spends nothing
    opened = await follow(flow_client, url)
    assert opened.status == 302 and opened.headers["Location"].startswith(flow_idp.issuer)
    cookie = opened.cookies[binding.COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/oauth"
    assert cookie["max-age"] == str(binding.MAX_AGE_S) and not cookie["secure"]
    status, page = await in_other_browser(url)
    assert status == 410 and "LinkUsed" in page
    callback = await authorize_as(flow_idp, opened.headers["Location"], "api-bound")
    assert (await in_other_browser(callback))[0] == 403
    assert (await follow(flow_client, callback)).status == 200


async def test_no_cookie_no_account(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp, flow_core: Core
) -> None:
    """A browser that lost its cookie (or a forged one) is refused like another browser."""
    consent_url = await start_consent(flow_client, flow_admin, account="lost")
    callback = await authorize_as(flow_idp, consent_url, "lost")
    jar = flow_client.session.cookie_jar
    jar.clear()
    assert (await follow(flow_client, callback)).status == 403
    jar.update_cookies({binding.COOKIE: binding.new_binding()})
    resp = await follow(flow_client, callback)
    assert resp.status == 403 and "BrowserMismatch" in await resp.text()
    assert await flow_core.accounts.get("lost") is None


def test_cookie_secure_on_https_under_the_base_path() -> None:
    """On an https BASE_URL the cookie is Secure, with Path the /oauth under the base path."""
    response = web.Response()
    set_binding(response, "https://tokens.example.com/tb", binding.new_binding())
    cookie = response.cookies[binding.COOKIE]
    assert cookie["secure"] and cookie["path"] == "/tb/oauth" and cookie["httponly"]


def test_binding_values_and_form_tokens() -> None:
    """Bindings are 256-bit random; a form token is tied to both the binding and the link."""
    one, two = binding.new_binding(), binding.new_binding()
    assert one != two and binding.usable(one) == one
    assert binding.usable("short") is None and binding.usable(one + "=") is None
    assert binding.matches(one, binding.digest(one)) and not binding.matches(
        two, binding.digest(one)
    )
    assert not binding.matches(None, binding.digest(one)) and not binding.matches(one, None)
    token = binding.form_token(one, "link-1")
    assert binding.form_token_ok(one, "link-1", token)
    assert not binding.form_token_ok(two, "link-1", token)
    assert not binding.form_token_ok(one, "link-2", token)
    assert not binding.form_token_ok(None, "link-1", token)
    assert not binding.form_token_ok(one, "link-1", None)
