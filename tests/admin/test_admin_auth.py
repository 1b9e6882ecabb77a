"""Settings-page security: scrypt hash, login and its rate limit, sessions, CSRF, logout."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.admin_auth import (
    SESSION_TTL_S,
    AdminAuth,
    LoginFailed,
    LoginThrottled,
    hash_password,
    verify_password,
)
from service.config import Config
from service.core import Core
from service.web.app import create_app
from service.web.appkeys import ADMIN
from tests.support.admin import PASSWORD, csrf, login, post_form

Client = TestClient[web.Request, web.Application]
ClientFactory = Callable[..., Awaitable[Client]]
PARAMS = {"{app}": "some-app", "{account}": "some-account", "{id}": "msg_x"}


def admin_routes(method: str) -> list[str]:
    """Every settings-page path with `method`, from the app's own router."""
    app = create_app(Config(redis_url="redis://127.0.0.1:1/0", secret_key=bytes(32)))
    paths = set()
    for route in app.router.routes():
        name = str(route.name or "")
        if route.method != method or not name.startswith("admin_") or name == "admin_static":
            continue
        path = route.resource.canonical if route.resource else ""
        for placeholder, value in PARAMS.items():
            path = path.replace(placeholder, value)
        paths.add(path)
    return sorted(paths)


PUBLIC = {"/admin/login"}  # the login form itself; /admin redirects to /admin/


def test_scrypt_hash_is_salted_and_verifies() -> None:
    """The stored form is scrypt with a random salt; only the right password verifies."""
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert verify_password("s3cret-pass", first) and verify_password("s3cret-pass", second)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("s3cret-pass", "garbage")


async def test_password_stored_as_hash_only(client: Client, redis: Redis, core: Core) -> None:
    """Setting a password stores its hash and never the password."""
    await client.app[ADMIN].set_password(PASSWORD)
    stored = await redis.hgetall(core.keys.admin)
    assert set(stored) == {"passwordHash", "generation"}  # generation: ends older sessions
    assert all(PASSWORD not in value for value in stored.values())


@pytest.mark.parametrize("path", [p for p in admin_routes("GET") if p not in PUBLIC])
async def test_pages_need_login(client: Client, password: str, path: str) -> None:
    """Every settings page sends a visitor without a session to the login page."""
    resp = await client.get(path, allow_redirects=False)
    assert resp.status == 303
    location = resp.headers["Location"]
    assert location.startswith("/admin/login") or location == "/admin/", location


@pytest.mark.parametrize("path", admin_routes("POST"))
async def test_posts_need_csrf(client: Client, password: str, path: str) -> None:
    """Every settings-page form is refused (403 page) without the session's CSRF token."""
    resp = await client.post(path, data={"user": "admin"}, allow_redirects=False)
    assert resp.status == 403
    assert resp.content_type == "text/html"
    assert "did not come from this site" in await resp.text()


@pytest.mark.parametrize("path", admin_routes("POST"))
async def test_logged_in_posts_need_csrf(operator: Client, path: str) -> None:
    """A logged-in operator's form with a wrong or missing token is refused too."""
    for data in ({"csrf": "forged"}, {}):
        resp = await operator.post(path, data=data, allow_redirects=False)
        assert resp.status == 403, await resp.text()


async def test_login_success_sets_a_strict_cookie(client: Client, password: str) -> None:
    """Logging in answers 303 to the dashboard with an HttpOnly, SameSite=Strict cookie."""
    resp = await login(client, password)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/"
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert f"Max-Age={SESSION_TTL_S}" in cookie and "Secure" not in cookie
    page = await client.get("/admin/")
    assert page.status == 200 and "Dashboard" in await page.text()
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["X-Frame-Options"] == "DENY"


async def test_cookie_is_secure_on_https(make_client: ClientFactory, config: Config) -> None:
    """With an https base URL the session cookie is Secure."""
    client = await make_client(dataclasses.replace(config, base_url="https://broker.example"))
    resp = await client.get("/admin/login")
    assert "Secure" in resp.headers["Set-Cookie"]


async def test_wrong_password_keeps_user_not_password(client: Client, password: str) -> None:
    """A wrong password shows the form again (401) with the user name, never the password."""
    resp = await login(client, "wrong-password-typed", user="admin")
    body = await resp.text()
    assert resp.status == 401
    assert "wrong user name or password" in body and 'value="admin"' in body
    assert "wrong-password-typed" not in body
    assert (await client.get("/admin/", allow_redirects=False)).status == 303


async def test_login_rate_limited_per_ip(client: Client, password: str) -> None:
    """After 5 failures from one IP even the right password is refused (429) for a while."""
    for _ in range(5):
        assert (await login(client, "nope-nope-nope")).status == 401
    resp = await login(client, password)
    assert resp.status == 429
    assert "too many failed logins" in await resp.text()
    assert "Retry-After" in resp.headers


async def test_login_rate_limited_per_account(client: Client, password: str, redis: Redis) -> None:
    """Failures from many IPs add up per account; the counters expire."""
    auth: AdminAuth = client.app[ADMIN]
    for n in range(20):
        with pytest.raises(LoginFailed):
            await auth.login("admin", "bad-password", f"10.0.0.{n}")
    with pytest.raises(LoginThrottled):
        await auth.login("admin", password, "10.0.1.1")
    key = auth.keys.login_failures("account", "admin")
    assert 0 < await redis.ttl(key) <= auth.limits.window_s


async def test_login_next_is_local_only(client: Client, password: str) -> None:
    """The page to return to after login must be a settings page (no open redirect)."""
    for target, expected in (("/admin/tokens", "/admin/tokens"), ("//evil.example", "/admin/")):
        token = await csrf(client, "/admin/login")
        form = {"csrf": token, "user": "admin", "password": password, "next": target}
        resp = await client.post("/admin/login", data=form, allow_redirects=False)
        assert resp.headers["Location"] == expected
        await post_form(client, "/admin/logout", {}, page="/admin/")


async def test_logout_ends_the_session_everywhere(operator: Client, redis: Redis) -> None:
    """After logout a copy of the old cookie no longer opens any page."""
    old_cookies = {c.key: c.value for c in operator.session.cookie_jar}
    resp = await post_form(operator, "/admin/logout", {}, page="/admin/")
    assert resp.status == 303 and resp.headers["Location"] == "/admin/login?out=1"
    assert (await operator.get("/admin/", allow_redirects=False)).status == 303
    operator.session.cookie_jar.update_cookies(old_cookies)
    assert (await operator.get("/admin/", allow_redirects=False)).status == 303
    assert await redis.keys("*admin:session:*") == []


async def test_sessions_expire(operator: Client, redis: Redis) -> None:
    """A session lives in Redis with the session's TTL; when it is gone, so is the login."""
    (key,) = await redis.keys("*admin:session:*")
    assert 0 < await redis.ttl(key) <= SESSION_TTL_S
    await redis.delete(key)  # what the TTL does after SESSION_TTL_S
    assert (await operator.get("/admin/", allow_redirects=False)).status == 303


async def test_set_password_logs_everyone_out(operator: Client) -> None:
    """A new password ends every session (what `tokenbroker admin set-password` does)."""
    await operator.app[ADMIN].set_password("another-password")
    assert (await operator.get("/admin/", allow_redirects=False)).status == 303


async def test_short_password_refused(client: Client) -> None:
    """Passwords shorter than 8 characters are refused."""
    with pytest.raises(Exception, match="at least 8"):
        await client.app[ADMIN].set_password("short")


async def test_html_errors_under_admin(operator: Client) -> None:
    """Unknown pages and records under /admin answer an HTML page, not JSON."""
    for path, status in (("/admin/nope", 404), ("/admin/apps/missing", 404)):
        resp = await operator.get(path)
        assert resp.status == status and resp.content_type == "text/html"
    resp = await operator.get("/admin/accounts/bad%20id")
    assert resp.status == 400 and resp.content_type == "text/html"


async def test_api_routes_set_no_cookie(client: Client, admin: dict[str, str]) -> None:
    """The JSON API never starts a session."""
    resp = await client.get("/v1/settings", headers=admin)
    assert resp.status == 200 and "Set-Cookie" not in resp.headers


async def wrong_logins(client: Client, count: int, headers: dict[str, str]) -> Counter[int]:
    """POST `count` wrong passwords at once (one session, one CSRF token); the statuses."""
    token = await csrf(client, "/admin/login")
    form = {"csrf": token, "user": "admin", "password": "not-the-password", "next": "/admin/"}

    async def one() -> int:
        resp = await client.post("/admin/login", data=form, headers=headers)
        return resp.status

    return Counter(await asyncio.gather(*(one() for _ in range(count))))


async def test_concurrent_wrong_logins_check_at_most_the_limit(
    client: Client, password: str
) -> None:
    """40 wrong passwords at once: at most the IP limit are checked (401), the rest are 429."""
    limit = client.app[ADMIN].limits.ip
    statuses = await wrong_logins(client, 40, {})
    assert statuses == Counter({401: limit, 429: 40 - limit})


async def test_success_clears_the_ip_and_returns_its_reservation(
    client: Client, password: str, redis: Redis
) -> None:
    """A good login clears the IP's failures and gives back its own attempt on the account."""
    auth: AdminAuth = client.app[ADMIN]
    for _ in range(auth.limits.ip - 1):
        assert (await login(client, "nope-nope-nope")).status == 401
    assert (await login(client, password)).status == 303
    assert not await redis.exists(auth.keys.login_failures("ip", "127.0.0.1"))
    assert await redis.get(auth.keys.login_failures("account", "admin")) == str(auth.limits.ip - 1)
    await post_form(client, "/admin/logout", {}, page="/admin/")
    statuses = await wrong_logins(client, auth.limits.ip, {})
    assert statuses == Counter({401: auth.limits.ip}), "a fresh allowance for the IP"


async def test_forwarded_for_ignored_from_an_untrusted_peer(client: Client, password: str) -> None:
    """Without TOKENBROKER_TRUSTED_PROXIES a client cannot dodge the limit with X-Forwarded-For."""
    limit = client.app[ADMIN].limits.ip
    for n in range(limit):
        assert await wrong_logins(client, 1, {"X-Forwarded-For": f"203.0.113.{n}"}) == {401: 1}
    assert await wrong_logins(client, 1, {"X-Forwarded-For": "198.51.100.1"}) == {429: 1}


async def test_forwarded_for_believed_from_a_trusted_proxy(
    make_client: ClientFactory, config: Config
) -> None:
    """Behind a trusted proxy each forwarded client has its own limit; spoofing does not help."""
    proxied = dataclasses.replace(config, trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),))
    client = await make_client(proxied)
    await client.app[ADMIN].set_password(PASSWORD)
    limit = client.app[ADMIN].limits.ip
    first = {"X-Forwarded-For": "203.0.113.7"}
    assert await wrong_logins(client, limit + 3, first) == {401: limit, 429: 3}
    spoofed = {"X-Forwarded-For": "198.51.100.1, 203.0.113.7"}  # the client's own left entry
    assert await wrong_logins(client, 1, spoofed) == {429: 1}
    other = {"X-Forwarded-For": "203.0.113.8"}
    assert await wrong_logins(client, 1, other) == {401: 1}, "another client is not throttled"
