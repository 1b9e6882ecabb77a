"""The OpenAPI document: valid 3.1, in step with routes.py, and true to what handlers send."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
import orjson
import pytest
from aiohttp import web
from openapi_spec_validator import validate

from service import errors
from service.accounts import Account, Status
from service.app_input import INPUT_FIELDS
from service.apps import App
from service.clock import iso
from service.outbound.urls import check_outbound_url
from service.settings import DEFAULTS
from service.tokens import FreshToken, TokenView
from service.validate import ACCOUNT_ID, scopes
from service.web.accounts import IMPORT_FIELDS, OAUTH2_FIELDS
from service.web.ee_accounts import account_view, list_item
from service.web.middleware import error_response
from service.web.openapi_doc import SCOPE_STRING_PATTERN, URL_PATTERN, build_document
from service.web.routes import add_routes

NOW = 1_780_000_000_123
METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def _schema_validator(name: str) -> jsonschema_rs.Validator:
    """A validator for one component schema, its $refs resolved inside the document."""
    root = {"$ref": f"#/components/schemas/{name}", "components": build_document()["components"]}
    return jsonschema_rs.Draft202012Validator(root, validate_formats=True)


def _errors_of(name: str, instance: Any) -> list[str]:
    return [error.message for error in _schema_validator(name).iter_errors(instance)]


def test_document_is_valid_openapi_31() -> None:
    """build_document() passes the OpenAPI 3.1 spec validator."""
    document = build_document()
    assert document["openapi"] == "3.1.0"
    validate(document)


def test_every_route_is_documented_and_nothing_else() -> None:
    """Each route of add_routes (but HEAD) is an operation with its method, path and name."""
    app = web.Application()
    add_routes(app)
    registered = {
        (route.method.lower(), route.resource.canonical, route.name)
        for route in app.router.routes()
        if route.method != "HEAD"
        and route.resource is not None
        # The settings pages (admin_*) are HTML pages, not the JSON API: not documented.
        and not str(route.name).startswith("admin_")
    }
    documented = {
        (method, path, operation["operationId"])
        for path, item in build_document()["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    }
    assert documented == registered


def test_error_responses_name_codes_of_their_status() -> None:
    """Every error response uses the Error schema and names codes of errors.py with its status."""
    status_of = errors.statuses()
    for item in build_document()["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if int(status) < 400:
                    continue
                ((content_type, content),) = response["content"].items()
                page = content_type == "text/html"  # browser routes answer with a page
                name = "Page" if page else "Error"
                assert content["schema"] == {"$ref": f"#/components/schemas/{name}"}
                assert response["x-error-codes"]
                assert {status_of[code] for code in response["x-error-codes"]} == {int(status)}


def test_secured_routes_answer_401_and_403_and_503() -> None:
    """Operations that need a token document 401, 403 and 503; the open ones need none."""
    for path, item in build_document()["paths"].items():
        for operation in item.values():
            if path in (
                "/health",
                "/ready",
                "/openapi.json",
                "/oauth/start",
                "/oauth/callback",
                "/oauth",
            ):
                assert operation["security"] == []
                continue
            assert {"401", "403", "503"} <= set(operation["responses"]), operation["operationId"]
            if "requestBody" in operation:
                assert {"400", "413", "415"} <= set(operation["responses"])


def test_request_schemas_list_exactly_the_fields_handlers_accept() -> None:
    """Request bodies are closed and name the same fields as the handlers' allow-lists."""
    schemas = build_document()["components"]["schemas"]
    expected = {
        "AccountImport": IMPORT_FIELDS,
        "AppCreate": INPUT_FIELDS,
        "AppUpdate": INPUT_FIELDS - {"id", "provider"},
        "SettingsUpdate": set(DEFAULTS),
    }
    for name, fields in expected.items():
        assert schemas[name]["additionalProperties"] is False, name
        assert set(schemas[name]["properties"]) == fields, name
    oauth2 = schemas["AccountImport"]["properties"]["oauth2"]
    assert oauth2["additionalProperties"] is False
    assert set(oauth2["properties"]) == OAUTH2_FIELDS


def test_account_import_schema_takes_a_good_body_and_refuses_unknown_fields() -> None:
    """A body the import handler takes validates; an unknown field, anywhere, does not."""
    body: dict[str, Any] = {
        "account": "alice@example.com",
        "name": None,
        "oauth2": {
            "provider": "gmail-app",
            "auth": {"user": "alice@example.com"},
            "refreshToken": "1//refresh",
            "accessToken": "ya29.access",
            "expires": "2030-01-01T00:00:00Z",
            "scopes": "openid email https://mail.google.com/",
        },
    }
    assert _errors_of("AccountImport", body) == []
    assert _errors_of("AccountImport", {**body, "authorize": True})
    body["oauth2"]["auth"]["pass"] = "x"
    assert _errors_of("AccountImport", body)


@pytest.mark.parametrize(
    ("value", "valid"),
    [("", True), ("openid  email\tprofile ", True), ('a"b', False), ("x\\y", False)],
)
def test_scope_string_pattern_agrees_with_the_validator(value: str, valid: bool) -> None:
    """The space-separated scopes pattern accepts what validate.scopes accepts."""
    assert bool(re.fullmatch(SCOPE_STRING_PATTERN, value)) is valid
    try:
        scopes(value, "scopes")
    except errors.InvalidInput:
        assert not valid
    else:
        assert valid


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("https://idp.example.com/token", True),
        ("HTTP://10.0.0.1:8080/x?y#z", True),
        ("ftp://example.com/", False),
        ("https://user:pw@example.com/", False),
        ("https:///path", False),
        ("https://", False),
    ],
)
def test_url_pattern_agrees_with_the_url_check(value: str, valid: bool) -> None:
    """The http(s) URL pattern accepts what check_outbound_url accepts (private hosts allowed)."""
    assert bool(re.fullmatch(URL_PATTERN, value)) is valid
    try:
        check_outbound_url(value, "url", allow_private=True)
    except errors.InvalidInput:
        assert not valid
    else:
        assert valid


def test_app_create_schema_follows_the_provider_kind_rules() -> None:
    """Only microsoft apps take tenant and cloud; oidc apps need an issuer or a tokenUrl."""
    base = {"provider": "oidc", "clientId": "cid", "clientSecret": "secret"}
    assert _errors_of("AppCreate", {**base, "issuer": "https://idp.example.com"}) == []
    assert _errors_of("AppCreate", {**base, "tokenUrl": "https://idp.example.com/t"}) == []
    assert _errors_of("AppCreate", {**base, "issuer": None})
    microsoft = {**base, "provider": "outlook", "tenant": "organizations", "cloud": "china"}
    assert _errors_of("AppCreate", microsoft) == []
    assert _errors_of("AppCreate", {**microsoft, "provider": "gmail"})
    assert _errors_of("AppCreate", {**base, "provider": "gmail", "tenant": None}) == []


def test_account_path_parameter_uses_the_account_id_pattern() -> None:
    """The {account} parameter carries the same pattern that validate.account_id applies."""
    operation = build_document()["paths"]["/v1/account/{account}"]["get"]
    (param,) = operation["parameters"]
    assert param["schema"]["pattern"] == r"^[A-Za-z0-9][A-Za-z0-9._@+\-]{0,255}$"
    assert param["schema"]["pattern"] == f"^{ACCOUNT_ID.pattern}$"


def test_account_views_match_the_account_schema() -> None:
    """public(), the list item and the EmailEngine view of full and bare accounts validate."""
    full = Account(
        id="alice@example.com",
        app="gmail-app",
        provider="gmail",
        user="alice@example.com",
        status=Status.REAUTH_REQUIRED,
        name="Alice",
        reason="invalidGrant",
        scopes=["openid"],
        expires_at_ms=NOW,
        lifetime_ms=3_600_000,
        refreshed_at_ms=NOW,
        created_ms=NOW,
        updated_ms=NOW,
        attempts=2,
        last_error={"error": "invalid_grant"},
    )
    bare = Account(id="b", app="a", provider="oidc", user="", status=Status.ACTIVE)
    for account in (full, bare):
        assert _errors_of("Account", account.public()) == []
    items = [list_item(full), list_item(bare)]
    page = {"total": 2, "page": 0, "pages": 1, "query": False, "state": "*", "accounts": items}
    assert _errors_of("AccountPage", page) == []
    for account, preset in ((full, "imap"), (bare, None)):
        assert _errors_of("AccountView", account_view(account, preset)) == []


def test_app_views_match_the_app_schema() -> None:
    """App.public() of gmail, outlook (tenant, error) and bare oidc apps validates."""
    stamps = {"created": iso(NOW), "updated": iso(NOW)}
    apps = [
        App(id="g", provider="gmail", client_id="cid", fields=stamps, encrypted_secret="enc"),
        App(
            id="m",
            provider="outlook",
            client_id="cid",
            additional_scopes=["Mail.Read"],
            fields={"tenant": "organizations", "cloud": "gcc-high", "error": '{"error":"x"}'},
        ),
        App(id="o", provider="oidc", client_id="", fields={"tokenUrl": "https://idp/token"}),
    ]
    views = [app.public(3, "http://127.0.0.1:8080") for app in apps]
    for view in views:
        assert _errors_of("App", view) == []
    listing = {"total": len(views), "pages": 1, "page": 0, "apps": views}
    assert _errors_of("AppList", listing) == []


def test_token_body_and_settings_match_their_schemas() -> None:
    """FreshToken.body() (with refreshFailed) and the default settings validate."""
    view = TokenView(
        "a", "u@example.com", "ya29.x", "outlook", "m", ["openid"], NOW, Status.ACTIVE, iso(NOW)
    )
    assert _errors_of("OAuthToken", FreshToken(view, cached=True).body()) == []
    stale = FreshToken(view, cached=False, refresh_failed=True).body()
    assert stale["refreshFailed"] is True and _errors_of("OAuthToken", stale) == []
    assert _errors_of("Settings", DEFAULTS) == []
    changed = {
        **DEFAULTS,
        "webhooks": "https://hooks.example.com/x",
        "webhookEvents": ["accountAdded"],
    }
    assert _errors_of("SettingsUpdate", changed) == []


def test_error_bodies_match_the_error_schema() -> None:
    """What the middleware renders for an ApiError, with and without details, validates."""
    for exc in (
        errors.AccountNotFound("no account"),
        errors.ProviderUnavailable(
            "down", details={"error": "temporarily_unavailable"}, headers={"Retry-After": "5"}
        ),
    ):
        response = error_response(exc)
        assert response.headers["Cache-Control"] == "no-store"
        assert isinstance(response.body, bytes)
        assert _errors_of("Error", orjson.loads(response.body)) == []


def test_webhooks_section_describes_every_event() -> None:
    """The document's `webhooks` section has every event, with an example body."""
    from service.webhooks.events import EVENTS

    hooks = build_document()["webhooks"]
    assert set(hooks) == set(EVENTS)
    for event, item in hooks.items():
        example = item["post"]["requestBody"]["content"]["application/json"]["example"]
        assert example["event"] == event
        assert example["id"].startswith("msg_")
