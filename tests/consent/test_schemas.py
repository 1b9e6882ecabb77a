"""The OpenAPI document of the consent routes: bodies, redirects and HTML error pages."""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from service.web.ee_form import FORM_FIELDS
from service.web.openapi_doc import build_document


def _errors_of(name: str, instance: Any) -> list[str]:
    root = {"$ref": f"#/components/schemas/{name}", "components": build_document()["components"]}
    validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
    return [error.message for error in validator.iter_errors(instance)]


def test_form_schema_names_the_handlers_fields() -> None:
    """POST /v1/authentication/form's schema is closed and lists the fields the handler takes."""
    schema = build_document()["components"]["schemas"]["AuthenticationForm"]
    assert set(schema["properties"]) == FORM_FIELDS and schema["additionalProperties"] is False
    assert _errors_of("AuthenticationForm", {"redirectUrl": "https://a.example/cb"}) == []
    assert _errors_of("AuthenticationForm", {"redirectUrl": "https://a.example/cb", "ttl": 59})
    assert _errors_of("AuthenticationForm", {})


def test_account_body_is_an_import_or_a_consent() -> None:
    """authorize: true takes no tokens and may leave out the account; an import needs both."""
    consent = {"oauth2": {"provider": "app", "authorize": True, "redirectUrl": "https://a.x/cb"}}
    assert _errors_of("AccountImport", consent) == []
    assert _errors_of("AccountImport", {**consent, "account": None}) == []
    mixed = {"oauth2": {**consent["oauth2"], "refreshToken": "rt"}}
    assert _errors_of("AccountImport", mixed)
    imported = {"provider": "app", "auth": {"user": "u"}, "refreshToken": "rt"}
    assert _errors_of("AccountImport", {"account": "a", "oauth2": imported}) == []
    assert _errors_of("AccountImport", {"oauth2": imported})
    assert _errors_of(
        "AccountImport", {"account": "a", "oauth2": {**imported, "redirectUrl": None}}
    )
    assert _errors_of("AccountCreated", {"redirect": "https://idp.example/auth?x=1"}) == []
    assert _errors_of("AccountCreated", {"account": "a", "state": "new"}) == []


def test_browser_routes_redirect_or_answer_pages() -> None:
    """The callback and the link routes are public, redirect with Location, fail with HTML."""
    paths = build_document()["paths"]
    callback, start = paths["/oauth/callback"]["get"], paths["/oauth/start"]["get"]
    press = paths["/oauth/start"]["post"]
    for operation, status in ((callback, "303"), (start, "302"), (press, "303")):
        assert operation["security"] == []
        assert operation["responses"][status]["headers"]["Location"]["required"] is True
        assert "content" not in operation["responses"][status]
        errors = [r for s, r in operation["responses"].items() if int(s) >= 400]
        assert errors and all(set(r["content"]) == {"text/html"} for r in errors)
    assert set(callback["responses"]["200"]["content"]) == {"text/html"}
    assert set(start["responses"]["200"]["content"]) == {"text/html"}  # a hosted link's page
    assert set(press["requestBody"]["content"]) == {"application/x-www-form-urlencoded"}
    assert {"InvalidState", "ScopesMissing", "UserMismatch", "BrowserMismatch"} <= {
        code for r in callback["responses"].values() for code in r.get("x-error-codes", [])
    }
    assert {"FormTokenInvalid", "LinkUsed", "InvalidLink"} <= {
        code for r in press["responses"].values() for code in r.get("x-error-codes", [])
    }
