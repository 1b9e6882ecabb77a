"""The auth matrix: every API route refuses missing, bad, expired, wrong-scope and foreign tokens.

The routes come from the app's own router, so a route added to service/web/routes.py is in
the matrix without anyone remembering to add it here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from service.apitokens import SCOPES
from service.clock import SystemClock
from service.config import Config
from service.core import Core
from service.web.app import create_app
from tests.conftest import TEST_SECRET, make_token
from tests.support.logs import logged_lines

Client = TestClient[web.Request, web.Application]

PUBLIC = (
    "health",
    "ready",
    "openapi",
    "oauth_start",
    "oauth_start_post",
    "oauth_callback",
    "oauth_callback_ee",
)
PUBLIC_ROUTES = set(PUBLIC)  # by design
# The settings pages (admin_*) take the session cookie, never a bearer token: their own
# matrix (login required, CSRF) is tests/admin/test_admin_auth.py.
ADMIN = "admin_"
SCOPE_OF = {
    "oauth_token": "oauth-tokens",
    "metrics": "metrics",
    "audit_list": "audit",
}  # others: "api"
# The API token routes need operator authority: an unbound `*` token, even on an account's.
OPERATOR = dict.fromkeys(
    (
        "tokens_list",
        "token_create",
        "token_get",
        "token_delete",
        "tokens_account",
        "token_create_deprecated",
        "token_delete_deprecated",
    ),
    "*",
)
SCOPE_OF.update(OPERATOR)
ACCOUNT = "acct-1"
OTHER_ACCOUNT = "acct-2"
APP = "app-1"
PARAMS = {"{account}": ACCOUNT, "{app}": APP, "{id}": "msg_unknown", "{token}": "0" * 16}
ERROR_KEYS = {"statusCode", "error", "message", "code"}


@dataclass(frozen=True)
class Route:
    """One protected route of the app, with the path used to call it."""

    name: str
    method: str
    template: str

    @property
    def scope(self) -> str:
        """The API token scope the route needs."""
        return SCOPE_OF.get(self.name, "api")

    @property
    def account_bound(self) -> bool:
        """True when the route acts on one account (an account-bound token may use it)."""
        return "{account}" in self.template and self.name not in OPERATOR

    def path(self, account: str = ACCOUNT) -> str:
        """The template with every placeholder filled in."""
        path = self.template
        for placeholder, value in {**PARAMS, "{account}": account}.items():
            path = path.replace(placeholder, value)
        return path

    def __str__(self) -> str:
        return f"{self.method} {self.template}"


def _protected_routes() -> list[Route]:
    app = create_app(Config(redis_url="redis://127.0.0.1:1/0", secret_key=TEST_SECRET))
    routes = [
        Route(str(route.name), route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    ]
    return sorted(
        (r for r in routes if r.name not in PUBLIC_ROUTES and not r.name.startswith(ADMIN)),
        key=lambda r: (r.template, r.method),
    )


ROUTES = _protected_routes()
ACCOUNT_ROUTES = [r for r in ROUTES if r.account_bound]
GLOBAL_ROUTES = [r for r in ROUTES if not r.account_bound]
OTHER_SCOPES = {
    r.name: sorted(s for s in SCOPES if s not in (r.scope, "*")) for r in ROUTES
}  # scopes that must not open the route


async def call(
    client: Client,
    route: Route,
    token: str | None,
    *,
    path: str | None = None,
    authorization: str | None = None,
) -> ClientResponse:
    """Call `route` with `token` as a Bearer token (or a raw Authorization header value).

    Routes that take a body get an empty JSON object.
    """
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if authorization is not None:
        headers["Authorization"] = authorization
    body: dict[str, Any] | None = {} if route.method in ("POST", "PUT", "PATCH") else None
    return await client.request(route.method, path or route.path(), headers=headers, json=body)


async def assert_error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert an error answer: status, JSON body {statusCode, error, message, code}, no-store."""
    body = await resp.json()
    assert resp.status == status, body
    assert resp.content_type == "application/json"
    assert ERROR_KEYS <= body.keys() <= ERROR_KEYS | {"details", "fields"}, body
    assert body["statusCode"] == status and body["code"] == code, body
    assert body["error"] == HTTPStatus(status).phrase, body
    assert isinstance(body["message"], str) and body["message"], body
    assert resp.headers.get("Cache-Control") == "no-store"
    return dict(body)


def test_matrix_covers_the_router() -> None:
    """The matrix holds every non-public route, each path placeholder is one we know how to fill."""
    names = {r.name for r in ROUTES}
    assert {"oauth_token", "account_create", "accounts_list", "settings_put"} <= names
    assert not names & PUBLIC_ROUTES
    for route in ROUTES:
        assert "{" not in route.path(), f"{route}: unknown path placeholder, extend PARAMS"
    assert SCOPE_OF.keys() <= names, "SCOPE_OF names a route that no longer exists"


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_no_token(client: Client, route: Route) -> None:
    """Without any token the route answers 401 Unauthorized, "Missing authentication" as EE."""
    body = await assert_error(await call(client, route, None), 401, "Unauthorized")
    assert body["message"] == "Missing authentication"


@pytest.mark.parametrize("route", [r for r in ROUTES if r.method == "GET"], ids=str)
async def test_no_token_head(client: Client, route: Route) -> None:
    """HEAD on a protected GET route is refused with 401 as well."""
    resp = await client.head(route.path())
    assert resp.status == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + secrets.token_hex(32),  # well-formed but unknown
        "Bearer not-a-token",
        "Bearer ",
        "Bearer",
        "Basic dXNlcjpwYXNzd29yZA==",
        "",
    ],
    ids=["unknown", "garbage", "empty-bearer", "scheme-only", "basic", "empty-header"],
)
@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_bad_token(client: Client, route: Route, header: str) -> None:
    """An unknown, malformed or non-Bearer credential is 401 Unauthorized."""
    await assert_error(await call(client, route, None, authorization=header), 401, "Unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_valid_token_under_other_scheme(client: Client, core: Core, route: Route) -> None:
    """A valid `*` token sent with a scheme other than Bearer is not accepted (401)."""
    token = await make_token(core, "*")
    resp = await call(client, route, None, authorization=f"Token {token}")
    await assert_error(resp, 401, "Unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_token_in_query_accepted_never_logged(
    client: Client, core: Core, route: Route, enabled: None
) -> None:
    """?access_token= opens the route as the header does (EmailEngine's rule), logged nowhere."""
    token = await make_token(core, "*")
    with logged_lines() as lines:
        resp = await call(client, route, None, path=f"{route.path()}?access_token={token}")
        assert resp.status not in (401, 403), await resp.text()
        unknown = f"{route.path()}?access_token={'0' * 64}"
        body = await assert_error(
            await call(client, route, None, path=unknown), 401, "Unauthorized"
        )
    assert body["message"] == "Bad token"
    assert lines.events("request") and token not in lines.text and "0" * 64 not in lines.text


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_expired_token(client: Client, core: Core, route: Route) -> None:
    """A `*` token whose expiry has passed is 401 Unauthorized."""
    token = await make_token(core, "*", expires_ms=SystemClock().now_ms() - 1000)
    await assert_error(await call(client, route, token), 401, "Unauthorized")


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_revoked_token(client: Client, core: Core, route: Route, enabled: None) -> None:
    """A `*` token that was used and then revoked is 401 Unauthorized at once."""
    token, meta = await core.tokens.create(["*"], None, "revoked", None, SystemClock().now_ms())
    assert (await call(client, route, token)).status not in (401, 403)  # now in the cache
    await core.tokens.revoke(meta.id)
    await assert_error(await call(client, route, token), 401, "Unauthorized")


@pytest.mark.parametrize(
    ("route", "scope"),
    [(r, s) for r in ROUTES for s in OTHER_SCOPES[r.name]],
    ids=lambda v: str(v),
)
async def test_wrong_scope(client: Client, core: Core, route: Route, scope: str) -> None:
    """A token without the route's scope (and without `*`) is 403 Forbidden."""
    token = await make_token(core, scope)
    body = await assert_error(await call(client, route, token), 403, "Forbidden")
    assert route.scope in body["message"]


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=str)
async def test_token_bound_to_another_account(client: Client, core: Core, route: Route) -> None:
    """A token with the right scope bound to another account is 403 Forbidden."""
    token = await make_token(core, route.scope, account=OTHER_ACCOUNT)
    await assert_error(await call(client, route, token), 403, "Forbidden")
    star = await make_token(core, "*", account=OTHER_ACCOUNT)
    await assert_error(await call(client, route, star), 403, "Forbidden")


@pytest.mark.parametrize("route", ACCOUNT_ROUTES, ids=str)
async def test_token_bound_to_this_account(
    client: Client, core: Core, route: Route, enabled: None
) -> None:
    """A token with the right scope bound to the route's account passes auth."""
    token = await make_token(core, route.scope, account=ACCOUNT)
    resp = await call(client, route, token)
    assert resp.status not in (401, 403), await resp.text()


@pytest.mark.parametrize("route", GLOBAL_ROUTES, ids=str)
async def test_account_bound_token_on_global_route(
    client: Client, core: Core, route: Route
) -> None:
    """An account-bound token (even `*`) cannot use a route that is not about its account."""
    for scope in (route.scope, "*"):
        token = await make_token(core, scope, account=ACCOUNT)
        await assert_error(await call(client, route, token), 403, "Forbidden")


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_star_token_passes(client: Client, core: Core, route: Route, enabled: None) -> None:
    """A `*` token passes auth on every route (whatever the route answers next)."""
    token = await make_token(core, "*")
    resp = await call(client, route, token)
    assert resp.status not in (401, 403), await resp.text()
    assert resp.status < 500, await resp.text()


@pytest.mark.parametrize("route", ROUTES, ids=str)
async def test_own_scope_passes(client: Client, core: Core, route: Route, enabled: None) -> None:
    """A token carrying exactly the route's scope (and no other) passes auth."""
    token = await make_token(core, route.scope)
    resp = await call(client, route, token)
    assert resp.status not in (401, 403), await resp.text()
