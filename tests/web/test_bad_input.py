"""Bad input of every kind is a 4xx JSON error with a stable code, never a 5xx."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.clock import SystemClock, iso, parse_iso_ms
from service.config import Config
from service.core import Core
from service.web.app import create_app
from service.web.appkeys import CORE
from tests.conftest import TEST_SECRET, make_token, wait_live

Client = TestClient[web.Request, web.Application]
Json = Any

APP = "bad-input-app"
TOKEN_URL = "http://127.0.0.1:9/token"  # nothing listens there: a refresh fails fast
MAX_BODY = 64 * 1024
ERROR_KEYS = {"statusCode", "error", "message", "code"}
BODY_ROUTES = [
    ("POST", "/v1/account"),
    ("POST", "/v1/oauth2"),
    ("PUT", f"/v1/oauth2/{APP}"),
    ("PUT", "/v1/settings"),
]
BODY_ROUTE_IDS = [f"{m} {p}" for m, p in BODY_ROUTES]


def _account_routes() -> list[tuple[str, str]]:
    app = create_app(Config(redis_url="redis://127.0.0.1:1/0", secret_key=TEST_SECRET))
    return sorted(
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
        and route.method != "HEAD"
        and "{account}" in route.resource.canonical
        # The settings pages (admin_*) answer HTML; tests/admin checks their bad input.
        and not str(route.name).startswith("admin_")
    )


ACCOUNT_ROUTES = _account_routes()


@pytest.fixture
async def headers(core: Core) -> dict[str, str]:
    """Headers with a `*` API token."""
    return {"Authorization": f"Bearer {await make_token(core, '*')}"}


@pytest.fixture
async def app_id(core: Core) -> str:
    """An oidc app whose token endpoint refuses connections; returns its id."""
    body = {
        "id": APP,
        "provider": "oidc",
        "clientId": "cid",
        "clientSecret": "csecret",
        "tokenUrl": TOKEN_URL,
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    return APP


async def assert_error(resp: ClientResponse, status: int, code: str) -> dict[str, Any]:
    """Assert a JSON error answer with `status` and `code` in the shape the API promises."""
    text = await resp.text()
    assert resp.status == status, text
    assert resp.content_type == "application/json", text
    body = json.loads(text)
    assert ERROR_KEYS <= body.keys() <= ERROR_KEYS | {"details", "fields"}, body
    assert body["statusCode"] == status and body["code"] == code, body
    assert body["error"] == HTTPStatus(status).phrase, body
    return dict(body)


async def assert_handled(resp: ClientResponse, *, allow_503: bool = False) -> None:
    """Assert no 5xx (503 from a provider only where allowed); an error has the error shape."""
    text = await resp.text()
    limit = 504 if allow_503 else 500
    assert resp.status < limit and resp.status != 500, f"{resp.method} {resp.url}: {text}"
    if resp.status >= 400:
        body = json.loads(text)
        assert body.keys() >= ERROR_KEYS, body
        assert body["statusCode"] == resp.status and body["code"] != "InternalError", body


def short(value: object) -> str:
    """A test id for a parameter: its repr, cut to 40 characters."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} chars)"


def with_change(base: dict[str, Any], path: str, value: Json) -> dict[str, Any]:
    """Return a deep copy of `base` with the dotted `path` set to `value`."""
    body = copy.deepcopy(base)
    *parents, last = path.split(".")
    target = body
    for name in parents:
        target = target[name]
    target[last] = value
    return body


# -- bodies that are not a JSON object ---------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b"",
        b"{'account': 'a'}",
        b'{"account": "a",}',
        b'{"a": 1} trailing',
        b"NaN",
        b"\xff\xfe{}",
        b"[" * 5000,  # nested deeper than the parser allows
        b'{"a": "\\ud800"}',  # a lone surrogate
    ],
    ids=[
        "unclosed",
        "empty",
        "single-quotes",
        "trailing-comma",
        "trailing-garbage",
        "nan",
        "not-utf8",
        "too-deep",
        "lone-surrogate",
    ],
)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_malformed_json(
    client: Client, headers: dict[str, str], app_id: str, method: str, path: str, raw: bytes
) -> None:
    """A body that is not valid JSON is 400 InvalidJson."""
    resp = await client.request(
        method, path, data=raw, headers={**headers, "Content-Type": "application/json"}
    )
    await assert_error(resp, 400, "InvalidJson")


@pytest.mark.parametrize("value", [[], [{"account": "a"}], "text", 1, 1.5, None, True], ids=short)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_json_that_is_not_an_object(
    client: Client, headers: dict[str, str], app_id: str, method: str, path: str, value: Json
) -> None:
    """Valid JSON that is not an object (an array, a string, null...) is 400 InvalidInput."""
    hdrs = {**headers, "Content-Type": "application/json"}
    resp = await client.request(method, path, data=json.dumps(value), headers=hdrs)
    await assert_error(resp, 400, "InvalidInput")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/xml"],
)
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_wrong_content_type(
    client: Client,
    headers: dict[str, str],
    app_id: str,
    method: str,
    path: str,
    content_type: str,
) -> None:
    """A body sent as anything but JSON is 415 UnsupportedMediaType."""
    resp = await client.request(
        method, path, data=b"{}", headers={**headers, "Content-Type": content_type}
    )
    await assert_error(resp, 415, "UnsupportedMediaType")


@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_json_with_charset_is_accepted(
    client: Client, headers: dict[str, str], app_id: str, method: str, path: str
) -> None:
    """`application/json; charset=utf-8` is JSON: the body gets past the media type check."""
    resp = await client.request(
        method,
        path,
        data=b"{}",
        headers={**headers, "Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.status != 415, await resp.text()
    await assert_handled(resp)


# -- oversized bodies --------------------------------------------------------------------


async def _chunks(total: int, size: int = 8192) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        sent += part
        yield b" " * part


@pytest.mark.parametrize("size", [MAX_BODY + 1, 1024 * 1024], ids=["64KiB+1", "1MiB"])
@pytest.mark.parametrize(("method", "path"), BODY_ROUTES, ids=BODY_ROUTE_IDS)
async def test_oversized_body(
    client: Client, headers: dict[str, str], app_id: str, method: str, path: str, size: int
) -> None:
    """A body over 64 KiB is 413 PayloadTooLarge, with Content-Length or chunked."""
    hdrs = {**headers, "Content-Type": "application/json"}
    resp = await client.request(method, path, data=b" " * size, headers=hdrs)
    await assert_error(resp, 413, "PayloadTooLarge")
    resp = await client.request(method, path, data=_chunks(size), headers=hdrs)
    await assert_error(resp, 413, "PayloadTooLarge")


async def test_body_of_exactly_the_limit_is_read(client: Client, headers: dict[str, str]) -> None:
    """A JSON body of exactly 64 KiB is not too large."""
    body = b'{"webhooks": "https://hooks.example.com/%s"}'
    raw = body % (b"a" * (MAX_BODY - len(body) + 2))
    assert len(raw) == MAX_BODY
    resp = await client.put(
        "/v1/settings", data=raw, headers={**headers, "Content-Type": "application/json"}
    )
    assert resp.status == 200, await resp.text()


# -- account ids ---------------------------------------------------------------------------

BAD_PATH_IDS = {
    "dot-first": ".abc",
    "dash-first": "-abc",
    "underscore-first": "_abc",
    "at-first": "@abc",
    "plus-first": "+abc",
    "too-long": "a" * 257,
    "space": "%20",
    "inner-space": "a%20b",
    "colon": "a:b",
    "star": "a*b",
    "newline": "a%0Ab",
    "trailing-newline": "abc%0A",
    "nul": "a%00b",
    "non-ascii": "%C3%A4bc",
    "zero-width-space": "%E2%80%8B",
    "encoded-slash": "a%2Fb",
    "percent": "a%25b",
    "quote": "a%22b",
}


@pytest.mark.parametrize("bad", BAD_PATH_IDS.values(), ids=BAD_PATH_IDS.keys())
@pytest.mark.parametrize(("method", "template"), ACCOUNT_ROUTES, ids=lambda v: str(v))
async def test_bad_account_id_in_path(
    client: Client, headers: dict[str, str], enabled: None, method: str, template: str, bad: str
) -> None:
    """An account id that breaks the id rules in a path is 400 InvalidAccountId."""
    resp = await client.request(method, template.replace("{account}", bad), headers=headers)
    await assert_error(resp, 400, "InvalidAccountId")


@pytest.mark.parametrize("path", ["/v1/account/", "/v1/account//oauth-token", "/v1/account/a/b"])
async def test_empty_account_id_in_path(client: Client, headers: dict[str, str], path: str) -> None:
    """An empty account path segment matches no route: 404 RouteNotFound, as JSON."""
    await assert_error(await client.get(path, headers=headers), 404, "RouteNotFound")


@pytest.mark.parametrize(("method", "template"), ACCOUNT_ROUTES, ids=lambda v: str(v))
async def test_longest_account_id_in_path(
    client: Client, headers: dict[str, str], enabled: None, method: str, template: str
) -> None:
    """A 256-character account id is valid: 404 AccountNotFound (a token list: empty)."""
    body = {"name": "x"} if method == "PUT" else None  # a valid body: the id decides
    path = template.replace("{account}", "a" * 256)
    resp = await client.request(method, path, headers=headers, json=body)
    if template == "/v1/tokens/account/{account}":  # tokens bound to it: none, as EmailEngine
        assert resp.status == 200 and await resp.json() == {"tokens": []}
        return
    await assert_error(resp, 404, "AccountNotFound")


BAD_BODY_IDS: dict[str, Json] = {
    "empty": "",
    "blank": " ",
    "tab": "\t",
    "dot-first": ".abc",
    "dash-first": "-abc",
    "too-long": "a" * 257,
    "colon": "a:b",
    "hash-tag": "a{p0}b",
    "slash": "a/b",
    "newline": "abc\n",
    "nul": "a\x00b",
    "non-ascii": "äbc",
    "zero-width-space": "\u200b",
    "number": 123,
    "bool": True,
    "list": ["abc"],
    "object": {"id": "abc"},
}


@pytest.mark.parametrize("bad", BAD_BODY_IDS.values(), ids=BAD_BODY_IDS.keys())
async def test_bad_account_id_in_import(
    client: Client, headers: dict[str, str], app_id: str, bad: Json
) -> None:
    """POST /v1/account with an account id that breaks the id rules is 400 InvalidAccountId."""
    body = with_change(ACCOUNT_BODY, "account", bad)
    resp = await client.post("/v1/account", json=body, headers=headers)
    await assert_error(resp, 400, "InvalidAccountId")


async def test_longest_account_id_in_import(
    client: Client, headers: dict[str, str], app_id: str
) -> None:
    """A 256-character account id of every allowed character class is imported and readable."""
    account = ("Az09._@+-" * 29)[:256]
    body = with_change(ACCOUNT_BODY, "account", account)
    resp = await client.post("/v1/account", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.get(f"/v1/account/{account.replace('+', '%2B')}", headers=headers)
    assert resp.status == 200 and (await resp.json())["account"] == account


# -- unknown fields ----------------------------------------------------------------------

ACCOUNT_BODY: dict[str, Any] = {
    "account": "bad-input",
    "name": "Bad Input",
    "oauth2": {
        "provider": APP,
        "auth": {"user": "user@example.test"},
        "refreshToken": "rt-value",
        "accessToken": "at-value",
        "expires": "2030-01-01T00:00:00Z",
        "scopes": ["openid", "mail.read"],
    },
}
APP_BODY: dict[str, Any] = {
    "id": "new-app",
    "provider": "oidc",
    "name": "New App",
    "clientId": "new-client",
    "clientSecret": "new-secret",
    "tokenUrl": TOKEN_URL,
    "additionalScopes": ["mail.read"],
}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/v1/account", with_change(ACCOUNT_BODY, "extra", 1), "extra"),
        ("POST", "/v1/account", with_change(ACCOUNT_BODY, "oauth2.refresh_token", "x"), None),
        ("POST", "/v1/account", with_change(ACCOUNT_BODY, "oauth2.auth.pass", "x"), "pass"),
        ("POST", "/v1/oauth2", with_change(APP_BODY, "secret", "x"), "secret"),
        ("PUT", f"/v1/oauth2/{APP}", {"name": "n", "colour": "red"}, "colour"),
        ("PUT", f"/v1/oauth2/{APP}", {"id": "renamed"}, "id"),
        ("PUT", "/v1/settings", {"webhooksEnabled": False, "nope": 1}, "nope"),
    ],
    ids=[
        "account",
        "account.oauth2",
        "account.oauth2.auth",
        "app",
        "app-update",
        "app-id",
        "settings",
    ],
)
async def test_unknown_fields(
    client: Client,
    headers: dict[str, str],
    app_id: str,
    method: str,
    path: str,
    body: dict[str, Any],
    field: str | None,
) -> None:
    """A field the endpoint does not know is 400 InvalidInput that names the field."""
    resp = await client.request(method, path, json=body, headers=headers)
    error = await assert_error(resp, 400, "InvalidInput")
    named = field or "refresh_token"
    details = error.get("details") or {}
    assert named in details.get("fields", []) or details.get("field") == named, error


# -- wrong types and values, field by field ------------------------------------------------

LONG = "x" * 20_000
Case = tuple[str, Json, int, str]


def cases(field: str, values: list[Json], status: int, code: str) -> list[Case]:
    """One (field, value, status, code) case per value."""
    return [(field, value, status, code) for value in values]


ACCOUNT_CASES: list[Case] = [
    *cases("name", [1, "", ["n"], {}, "n" * 257], 400, "InvalidInput"),
    *cases("oauth2", ["oauth2", [], 1, None], 400, "InvalidInput"),
    *cases("oauth2.provider", [1, "", None, "bad id!", [APP]], 400, "InvalidAppId"),
    ("oauth2.provider", "no-such-app", 404, "AppNotFound"),
    *cases("oauth2.auth", ["user", [], None, 1], 400, "InvalidInput"),
    *cases("oauth2.auth.user", [1, "", None, "u" * 321, ["u"]], 400, "InvalidInput"),
    *cases("oauth2.refreshToken", [1, "", None, LONG, {}], 400, "InvalidInput"),
    *cases("oauth2.accessToken", [1, "", [], LONG, False], 400, "InvalidInput"),
    *cases(
        "oauth2.expires",
        [1, 1.5, "tomorrow", "2030-01-01T00:00:00", "2030-13-01T00:00:00Z", "", True, []],
        400,
        "InvalidInput",
    ),
    *cases(
        "oauth2.scopes",
        [1, True, [1], {"a": 1}, ["a b"], ['a"b'], ["x" * 513], [f"s{i}" for i in range(101)]],
        400,
        "InvalidInput",
    ),
]


@pytest.mark.parametrize(("field", "value", "status", "code"), ACCOUNT_CASES, ids=short)
async def test_account_import_field_types(
    client: Client,
    headers: dict[str, str],
    app_id: str,
    field: str,
    value: Json,
    status: int,
    code: str,
) -> None:
    """POST /v1/account refuses a wrong type or value in any one field with a 4xx code."""
    resp = await client.post(
        "/v1/account", json=with_change(ACCOUNT_BODY, field, value), headers=headers
    )
    await assert_error(resp, status, code)
    assert (await client.get("/v1/account/bad-input", headers=headers)).status == 404


async def test_valid_account_import(client: Client, headers: dict[str, str], app_id: str) -> None:
    """The base body of the field tests is valid (so each case fails for its field only)."""
    resp = await client.post("/v1/account", json=ACCOUNT_BODY, headers=headers)
    assert resp.status == 200, await resp.text()


URL_VALUES: list[Json] = [
    1,
    "",
    "not a url",
    "ftp://example.com/x",
    "javascript:alert(1)",
    "http://[::1",
    "http://user:pw@example.com/x",
    "http://",
    ["http://example.com"],
]
APP_CASES: list[Case] = [
    *cases("id", [0, False, [], {}, "bad id", "x" * 65, ".dot"], 400, "InvalidAppId"),
    *cases("provider", [None, 1, "yahoo", "", ["oidc"], {}], 400, "InvalidInput"),
    *cases("clientId", [None, 1, "", LONG, ["c"]], 400, "InvalidInput"),
    *cases("clientSecret", [None, 1, "", LONG, {"s": 1}], 400, "InvalidInput"),
    *cases("name", [1, "", [], LONG], 400, "InvalidInput"),
    *cases("additionalScopes", [None, 1, True, [1], {}, ['a"b']], 400, "InvalidInput"),
    *cases("tokenUrl", URL_VALUES, 400, "InvalidInput"),
    *cases("issuer", URL_VALUES, 400, "InvalidInput"),
    *cases("redirectUrl", URL_VALUES, 400, "InvalidInput"),
    *[
        case
        for field in ("authorizationUrl", "userinfoUrl", "jwksUrl", "revocationUrl")
        for case in cases(field, [1, "http://[::1", "ftp://example.com/x"], 400, "InvalidInput")
    ],
    ("tenant", "common", 400, "InvalidInput"),  # microsoft only
    ("cloud", "global", 400, "InvalidInput"),  # microsoft only
]


@pytest.mark.parametrize(("field", "value", "status", "code"), APP_CASES, ids=short)
async def test_app_create_field_types(
    client: Client, headers: dict[str, str], field: str, value: Json, status: int, code: str
) -> None:
    """POST /v1/oauth2 refuses a wrong type or value in any one field with a 4xx code."""
    resp = await client.post(
        "/v1/oauth2", json=with_change(APP_BODY, field, value), headers=headers
    )
    await assert_error(resp, status, code)
    assert (await (await client.get("/v1/oauth2", headers=headers)).json())["total"] == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"provider": "outlook", "tenant": "bad tenant!"}, "tenant"),
        ({"provider": "outlook", "cloud": "mars"}, "cloud"),
        ({"provider": "outlook", "cloud": ["global"]}, "cloud"),
        ({"tokenUrl": None}, "tokenUrl"),  # an oidc app needs issuer or tokenUrl
    ],
    ids=["tenant", "cloud", "cloud-list", "oidc-without-endpoint"],
)
async def test_app_create_kind_rules(
    client: Client, headers: dict[str, str], changes: dict[str, Json], field: str
) -> None:
    """POST /v1/oauth2 refuses fields that do not fit the provider kind with 400 InvalidInput."""
    body = {**APP_BODY, **changes}
    resp = await client.post("/v1/oauth2", json=body, headers=headers)
    await assert_error(resp, 400, "InvalidInput")


async def test_valid_app_create(client: Client, headers: dict[str, str]) -> None:
    """The base body of the app field tests is valid."""
    resp = await client.post("/v1/oauth2", json=APP_BODY, headers=headers)
    assert resp.status == 200, await resp.text()


APP_UPDATE_CASES: list[Case] = [
    *cases("provider", ["google", 1, None], 400, "InvalidInput"),
    *cases("clientId", [None, 1, "", LONG], 400, "InvalidInput"),
    *cases("clientSecret", [1, "", LONG, ["s"]], 400, "InvalidInput"),
    *cases("name", [1, "", []], 400, "InvalidInput"),
    *cases("additionalScopes", [None, 1, [1], ["a b"]], 400, "InvalidInput"),
    *cases("tokenUrl", URL_VALUES, 400, "InvalidInput"),
    ("tokenUrl", None, 400, "InvalidInput"),  # would leave the oidc app without an endpoint
    *cases("issuer", [1, "http://[::1", "ftp://example.com/x"], 400, "InvalidInput"),
    ("tenant", "common", 400, "InvalidInput"),
]


@pytest.mark.parametrize(("field", "value", "status", "code"), APP_UPDATE_CASES, ids=short)
async def test_app_update_field_types(
    client: Client,
    headers: dict[str, str],
    app_id: str,
    field: str,
    value: Json,
    status: int,
    code: str,
) -> None:
    """PUT /v1/oauth2/{app} refuses a wrong type or value in any one field and changes nothing."""
    before = await (await client.get(f"/v1/oauth2/{app_id}", headers=headers)).json()
    resp = await client.put(f"/v1/oauth2/{app_id}", json={field: value}, headers=headers)
    await assert_error(resp, status, code)
    after = await (await client.get(f"/v1/oauth2/{app_id}", headers=headers)).json()
    assert after == before


async def test_app_update_keeps_omitted_and_null_secret(
    client: Client, headers: dict[str, str], app_id: str, core: Core
) -> None:
    """PUT without clientSecret, or with clientSecret null, keeps the stored secret."""
    for body in ({"name": "Renamed"}, {"clientSecret": None}):
        resp = await client.put(f"/v1/oauth2/{app_id}", json=body, headers=headers)
        assert resp.status == 200, await resp.text()
        shown = await (await client.get(f"/v1/oauth2/{app_id}", headers=headers)).json()
        assert shown["clientSecretSet"] is True
        assert core.apps.client_secret(await core.apps.require(app_id)) == "csecret"


SETTINGS_CASES: list[Case] = [
    *cases("enableOAuthTokensApi", ["yes", 1, None, []], 400, "InvalidInput"),
    ("enableOAuthTokensApi", True, 403, "SettingNotAllowed"),
    *cases("webhooksEnabled", ["true", 1, None], 400, "InvalidInput"),
    *cases(
        "allowedRedirectUrls",
        ["http://example.com", [1], ["not a url"], ["http://[::1"], None, {}],
        400,
        "InvalidInput",
    ),
    *cases(
        "webhooks",
        [1, "", "not a url", "ftp://example.com", "http://[::1", [], True],
        400,
        "InvalidInput",
    ),
    *cases("webhookEvents", ["all", 1, ["nope"], [{}], None, {}], 400, "InvalidInput"),
    *cases("webhookHeaders", [[], "x", {"a": 1}, None, {"a": None}], 400, "InvalidInput"),
    ("nope", 1, 400, "InvalidInput"),
]


@pytest.mark.parametrize(("field", "value", "status", "code"), SETTINGS_CASES, ids=short)
async def test_settings_field_types(
    client: Client, headers: dict[str, str], field: str, value: Json, status: int, code: str
) -> None:
    """PUT /v1/settings refuses a wrong type or value for any setting and changes nothing."""
    before = await (await client.get("/v1/settings", headers=headers)).json()
    resp = await client.put("/v1/settings", json={field: value}, headers=headers)
    await assert_error(resp, status, code)
    assert await (await client.get("/v1/settings", headers=headers)).json() == before


# -- query parameters, routes, methods -------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "page=-1",
        "page=abc",
        "page=1.5",
        "page=",
        "page=99999999999999999999",
        "pageSize=0",
        "pageSize=1001",
        "pageSize=ten",
        "status=bogus",
    ],
)
async def test_bad_list_query(client: Client, headers: dict[str, str], query: str) -> None:
    """GET /v1/accounts with a bad page, pageSize or status is 400 InvalidInput."""
    resp = await client.get(f"/v1/accounts?{query}", headers=headers)
    await assert_error(resp, 400, "InvalidInput")


async def test_unknown_route_and_method(client: Client, headers: dict[str, str]) -> None:
    """An unknown route is 404 RouteNotFound and a wrong method 405 MethodNotAllowed, as JSON."""
    await assert_error(await client.get("/v1/nope", headers=headers), 404, "RouteNotFound")
    resp = await client.patch("/v1/settings", json={}, headers=headers)
    await assert_error(resp, 405, "MethodNotAllowed")


# -- expiry times at the edges of what datetime can hold ---------------------------------

EDGE_TIMES = [
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "9999-12-31T23:59:59Z",
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "1970-01-01T00:00:00Z",
]


@pytest.mark.parametrize("expires", EDGE_TIMES)
async def test_edge_expiry_never_breaks_reads(
    client: Client, headers: dict[str, str], app_id: str, enabled: None, expires: str
) -> None:
    """An import with an extreme `expires` is refused or stored; no later read answers 500."""
    body = with_change(ACCOUNT_BODY, "oauth2.expires", expires)
    resp = await client.post("/v1/account", json=body, headers=headers)
    await assert_handled(resp)
    if resp.status != 200:
        return
    resp = await client.get("/v1/account/bad-input", headers=headers)
    await assert_handled(resp)
    stored = (await resp.json())["expires"]
    assert stored is None or parse_iso_ms(stored) is not None
    await assert_handled(await client.get("/v1/accounts", headers=headers))
    resp = await client.get("/v1/account/bad-input/oauth-token", headers=headers)
    await assert_handled(resp, allow_503=True)  # the provider is unreachable: 503 is fair


# -- fuzzing: arbitrary JSON at the two create endpoints ---------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=10,
)
offsets = st.timedeltas(min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23))
iso_times = st.builds(
    lambda stamp, offset: stamp.replace(tzinfo=timezone(offset)).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)),
    offsets,
)


def mostly(valid: st.SearchStrategy[Json]) -> st.SearchStrategy[Json]:
    """Usually a value from `valid`, sometimes any JSON: most bodies get deep into validation."""
    return st.one_of(valid, valid, valid, json_values)


scope_lists = st.lists(st.from_regex(r"[a-z.:/]{1,12}", fullmatch=True), max_size=5)
oauth2_objects = st.fixed_dictionaries(
    {
        "provider": mostly(st.just(APP)),
        "auth": mostly(st.fixed_dictionaries({"user": mostly(st.text(min_size=1, max_size=30))})),
        "refreshToken": mostly(st.text(min_size=1, max_size=40)),
    },
    optional={
        "accessToken": mostly(st.text(min_size=1, max_size=40)),
        "expires": mostly(iso_times | st.text(max_size=30)),
        "scopes": mostly(scope_lists | st.text(max_size=30)),
    },
)
account_bodies = json_values | st.fixed_dictionaries(
    {
        "account": mostly(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._@+\-]{0,20}", fullmatch=True)),
        "oauth2": mostly(oauth2_objects),
    },
    optional={"name": mostly(st.text(min_size=1, max_size=300))},
)
app_bodies = json_values | st.fixed_dictionaries(
    {
        "provider": mostly(st.sampled_from(["gmail", "outlook", "mailRu", "oidc"])),
        "clientId": mostly(st.text(min_size=1, max_size=20)),
        "clientSecret": mostly(st.text(min_size=1, max_size=20)),
    },
    optional={
        "id": mostly(st.from_regex(r"[a-z][a-z0-9\-]{0,10}", fullmatch=True)),
        "tokenUrl": mostly(
            st.sampled_from([TOKEN_URL, "http://[::1", "https://example.com/t"])
            | st.text(max_size=30)
        ),
        "issuer": mostly(st.sampled_from(["https://example.com", "http://[x"])),
        "redirectUrl": mostly(st.sampled_from(["https://example.com/cb", "cb"])),
        "tenant": mostly(st.sampled_from(["common", "bad tenant"])),
        "cloud": mostly(st.sampled_from(["global", "mars"])),
        "additionalScopes": mostly(scope_lists),
    },
)
FUZZ = settings(
    derandomize=True,
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture
def fuzz_client(config: Config) -> Iterator[tuple[asyncio.Runner, Client, dict[str, str]]]:
    """A web app on the test Redis driven from a sync test by its own event loop."""
    with asyncio.Runner() as runner:

        async def start() -> tuple[Client, dict[str, str]]:
            client: Client = TestClient(TestServer(create_app(config)))
            await client.start_server()
            await wait_live(client)
            core = client.app[CORE]
            await core.redis.flushall()
            await core.apps.create(
                {
                    "id": APP,
                    "provider": "oidc",
                    "clientId": "c",
                    "clientSecret": "s",
                    "tokenUrl": TOKEN_URL,
                },
                iso(SystemClock().now_ms()),
            )
            return client, {"Authorization": f"Bearer {await make_token(core, '*')}"}

        client, headers = runner.run(start())
        try:
            yield runner, client, headers
        finally:
            runner.run(client.close())


def test_fuzzed_bodies_never_5xx(
    fuzz_client: tuple[asyncio.Runner, Client, dict[str, str]],
) -> None:
    """Arbitrary JSON posted to POST /v1/account and POST /v1/oauth2 never gets a 5xx."""
    runner, client, headers = fuzz_client
    hdrs = {**headers, "Content-Type": "application/json"}
    accepted = {"/v1/account": 0, "/v1/oauth2": 0}

    async def post(path: str, body: Json) -> None:
        resp = await client.post(path, data=json.dumps(body), headers=hdrs)
        await assert_handled(resp)
        accepted[path] += resp.status in (200, 201)
        if path == "/v1/account" and resp.status == 200:
            account = (await resp.json())["account"].replace("+", "%2B")
            await assert_handled(await client.get(f"/v1/account/{account}", headers=headers))
            await assert_handled(await client.get("/v1/accounts", headers=headers))
        if path == "/v1/oauth2" and resp.status == 200:
            app = (await resp.json())["id"]
            await assert_handled(await client.get(f"/v1/oauth2/{app}", headers=headers))
            await assert_handled(await client.delete(f"/v1/oauth2/{app}", headers=headers))

    @FUZZ
    @given(body=account_bodies)
    def fuzz_accounts(body: Json) -> None:
        runner.run(post("/v1/account", body))

    @FUZZ
    @given(body=app_bodies)
    def fuzz_apps(body: Json) -> None:
        runner.run(post("/v1/oauth2", body))

    fuzz_accounts()
    fuzz_apps()
    print(accepted)
    assert all(accepted.values()), f"the fuzzing never got past validation: {accepted}"
