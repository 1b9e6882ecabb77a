"""Input limits: the OpenAPI schemas state them, and handler and schema agree at each edge."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonschema_rs
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service import limits
from service.core import Core
from service.validate import ACCOUNT_ID, APP_ID, HEADER_NAME, SCOPE
from service.web.openapi_doc import SCOPE_STRING_PATTERN, build_document
from service.web.openapi_webhooks import MSG_ID_PATTERN
from tests.conftest import make_token

Client = TestClient[web.Request, web.Application]
BASE_URL = "http://127.0.0.1:8080"  # the test config's, where a redirectUrl may point
APP = "limits-app"
APP_BODY = {
    "id": APP,
    "provider": "oidc",
    "clientId": "cid",
    "clientSecret": "csecret",
    "tokenUrl": "http://127.0.0.1:9/token",  # nothing listens: nothing here reaches it
    "authorizationUrl": "http://127.0.0.1:9/authorize",
}
IMPORT_BODY = {
    "account": "limits",
    "name": "Limits",
    "oauth2": {
        "provider": APP,
        "auth": {"user": "limits@example.test"},
        "refreshToken": "r",
        "accessToken": "a",
        "expires": "2099-01-01T00:00:00Z",
        "scopes": ["openid"],
    },
}
CONSENT_BODY = {"oauth2": {"provider": APP, "authorize": True, "redirectUrl": f"{BASE_URL}/"}}
FORM_BODY = {"redirectUrl": f"{BASE_URL}/", "name": "n", "expectedUser": "u@example.test"}


def text(n: int) -> str:
    """A string of n characters."""
    return "x" * n


def url(n: int) -> str:
    """A URL of n characters on the base URL."""
    return f"{BASE_URL}/{'p' * (n - len(BASE_URL) - 1)}"


def scope_list(n: int) -> list[str]:
    """Distinct scopes, n of them."""
    return [f"s{i}" for i in range(n)]


def one_scope(n: int) -> list[str]:
    """One scope of n characters."""
    return ["s" * n]


def header(n: int) -> dict[str, str]:
    """One webhook header whose value has n characters."""
    return {"X-Limit": "v" * n}


@dataclass(frozen=True)
class Edge:
    """A body field with a limit: where it goes, and how a value of a given size is made."""

    schema: str
    path: str  # the route
    body: dict[str, Any]
    field: str  # dotted
    limit: int
    make: Callable[[int], Any] = text
    code: str = "InvalidInput"
    method: str = "POST"


EDGES = [
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "account", limits.ACCOUNT_ID_MAX,
         code="InvalidAccountId"),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "name", limits.NAME_MAX),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "oauth2.auth.user", limits.USER_MAX),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "oauth2.refreshToken",
         limits.REFRESH_TOKEN_MAX),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "oauth2.accessToken",
         limits.ACCESS_TOKEN_MAX),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "oauth2.scopes", limits.SCOPES_MAX,
         scope_list),
    Edge("AccountImport", "/v1/account", IMPORT_BODY, "oauth2.scopes", limits.SCOPE_MAX,
         one_scope),
    Edge("AccountImport", "/v1/account", CONSENT_BODY, "oauth2.redirectUrl", limits.URL_MAX,
         url),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "id", limits.APP_ID_MAX, code="InvalidAppId"),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "name", limits.APP_TEXT_MAX),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "clientId", limits.APP_TEXT_MAX),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "clientSecret", limits.CLIENT_SECRET_MAX),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "tokenUrl", limits.APP_TEXT_MAX, url),
    Edge("AppCreate", "/v1/oauth2", APP_BODY, "additionalScopes", limits.SCOPES_MAX,
         scope_list),
    Edge("AuthenticationForm", "/v1/authentication/form", FORM_BODY, "redirectUrl",
         limits.URL_MAX, url),
    Edge("AuthenticationForm", "/v1/authentication/form", FORM_BODY, "name", limits.NAME_MAX),
    Edge("AuthenticationForm", "/v1/authentication/form", FORM_BODY, "expectedUser",
         limits.USER_MAX),
    Edge("AuthenticationForm", "/v1/authentication/form", FORM_BODY, "ttl",
         limits.LINK_TTL_S.high, int),
    Edge("SettingsUpdate", "/v1/settings", {}, "webhookHeaders", limits.HEADER_VALUE_MAX,
         header, "InvalidWebhookHeader", "PUT"),
    Edge("SettingsUpdate", "/v1/settings", {}, "serviceSecret", limits.SERVICE_SECRET_MAX,
         text, "InvalidInput", "PUT"),
]  # fmt: skip
QUERY_EDGES = [
    ("/v1/accounts", "page", limits.PAGE),
    ("/v1/accounts", "pageSize", limits.PAGE_SIZE),
    ("/v1/webhooks/deliveries", "limit", limits.DELIVERIES),
]


def with_value(body: dict[str, Any], field: str, value: Any) -> dict[str, Any]:
    """A deep copy of `body` with the dotted `field` set to `value`."""
    changed = copy.deepcopy(body)
    *parents, last = field.split(".")
    target = changed
    for name in parents:
        target = target[name]
    target[last] = value
    return changed


def schema_valid(name: str, instance: Any) -> bool:
    """Whether `instance` is valid against the document's component schema `name`."""
    root = {"$ref": f"#/components/schemas/{name}", "components": build_document()["components"]}
    return bool(jsonschema_rs.Draft202012Validator(root).is_valid(instance))


def component(path: str) -> Any:
    """The part of the document's component schemas at the dotted `path`."""
    found: Any = build_document()["components"]["schemas"]
    for name in path.split("."):
        found = found[int(name)] if isinstance(found, list) else found[name]
    return found


def parameter(path: str, name: str) -> dict[str, Any]:
    """The schema of the query parameter `name` of GET `path`."""
    operation = build_document()["paths"][path]["get"]
    return next(p["schema"] for p in operation["parameters"] if p["name"] == name)


@pytest.mark.parametrize(
    ("where", "keyword", "limit"),
    [
        ("AccountImport.properties.name", "maxLength", limits.NAME_MAX),
        ("AccountImport.properties.oauth2.properties.auth.properties.user", "maxLength",
         limits.USER_MAX),
        ("AccountImport.properties.oauth2.properties.refreshToken", "maxLength",
         limits.REFRESH_TOKEN_MAX),
        ("AccountImport.properties.oauth2.properties.accessToken", "maxLength",
         limits.ACCESS_TOKEN_MAX),
        ("AccountImport.properties.oauth2.properties.redirectUrl", "maxLength", limits.URL_MAX),
        ("AccountImport.properties.oauth2.properties.scopes.anyOf.0", "maxItems",
         limits.SCOPES_MAX),
        ("AppCreate.properties.name", "maxLength", limits.APP_TEXT_MAX),
        ("AppCreate.properties.clientId", "maxLength", limits.APP_TEXT_MAX),
        ("AppCreate.properties.clientSecret", "maxLength", limits.CLIENT_SECRET_MAX),
        ("AppCreate.properties.tokenUrl", "maxLength", limits.APP_TEXT_MAX),
        ("AppUpdate.properties.redirectUrl", "maxLength", limits.APP_TEXT_MAX),
        ("AuthenticationForm.properties.name", "maxLength", limits.NAME_MAX),
        ("AuthenticationForm.properties.expectedUser", "maxLength", limits.USER_MAX),
        ("AuthenticationForm.properties.redirectUrl", "maxLength", limits.URL_MAX),
        ("AuthenticationForm.properties.ttl", "minimum", limits.LINK_TTL_S.low),
        ("AuthenticationForm.properties.ttl", "maximum", limits.LINK_TTL_S.high),
        ("SettingsUpdate.properties.webhookHeaders.additionalProperties", "maxLength",
         limits.HEADER_VALUE_MAX),
        ("SettingsUpdate.properties.serviceSecret", "maxLength", limits.SERVICE_SECRET_MAX),
    ],
)  # fmt: skip
def test_schemas_state_the_limits(where: str, keyword: str, limit: int) -> None:
    """Each length, count and bound in the component schemas is the named limit."""
    assert component(where)[keyword] == limit


@pytest.mark.parametrize(
    ("path", "name", "bounds"),
    [
        *QUERY_EDGES,
        ("/v1/account/{account}/oauth-token", "minValidity", limits.MIN_VALIDITY_S),
    ],
)
def test_parameters_state_the_ranges(path: str, name: str, bounds: limits.Range) -> None:
    """Each integer query parameter has the minimum, maximum and default of its Range."""
    schema = parameter(path, name)
    assert (schema["minimum"], schema["maximum"], schema["default"]) == (
        bounds.low,
        bounds.high,
        bounds.default,
    )


def test_patterns_carry_the_lengths() -> None:
    """The id, scope, header-name and delivery-id patterns end at their limits."""
    assert ACCOUNT_ID.pattern.endswith(f"{{0,{limits.ACCOUNT_ID_MAX - 1}}}")
    assert APP_ID.pattern.endswith(f"{{0,{limits.APP_ID_MAX - 1}}}")
    assert SCOPE.pattern.endswith(f"{{1,{limits.SCOPE_MAX}}}")
    assert HEADER_NAME.pattern.endswith(f"{{1,{limits.HEADER_NAME_MAX}}}")
    assert SCOPE_STRING_PATTERN.endswith(f"{{0,{limits.SCOPES_MAX}}}$")
    assert MSG_ID_PATTERN.endswith(f"{{1,{limits.MSG_ID_MAX - len('msg_')}}}$")


@pytest.fixture
async def headers(core: Core) -> dict[str, str]:
    """Headers with a `*` API token."""
    return {"Authorization": f"Bearer {await make_token(core, '*')}"}


@pytest.mark.parametrize("edge", EDGES, ids=lambda e: f"{e.schema}.{e.field}={e.limit}")
async def test_handler_and_schema_agree_at_the_limit(
    client: Client, headers: dict[str, str], edge: Edge
) -> None:
    """A value at the limit is taken by handler and schema; one past it refused by both."""
    if edge.schema != "AppCreate":
        resp = await client.post("/v1/oauth2", json=APP_BODY, headers=headers)
        assert resp.status == 200, await resp.text()
    at_limit = with_value(edge.body, edge.field, edge.make(edge.limit))
    past = with_value(edge.body, edge.field, edge.make(edge.limit + 1))
    assert schema_valid(edge.schema, at_limit)
    assert not schema_valid(edge.schema, past)
    resp = await client.request(edge.method, edge.path, json=past, headers=headers)
    assert resp.status == 400, await resp.text()
    assert (await resp.json())["code"] == edge.code
    resp = await client.request(edge.method, edge.path, json=at_limit, headers=headers)
    assert resp.status < 300, await resp.text()


@pytest.mark.parametrize(("path", "name", "bounds"), QUERY_EDGES, ids=lambda v: str(v))
async def test_query_bounds_are_the_ranges(
    client: Client, headers: dict[str, str], path: str, name: str, bounds: limits.Range
) -> None:
    """A query parameter at either bound is taken; one past either is 400 InvalidInput."""
    for value in (bounds.low, bounds.high):
        resp = await client.get(f"{path}?{name}={value}", headers=headers)
        assert resp.status == 200, await resp.text()
    for value in (bounds.low - 1, bounds.high + 1):
        resp = await client.get(f"{path}?{name}={value}", headers=headers)
        assert resp.status == 400, await resp.text()
        assert (await resp.json())["code"] == "InvalidInput"
