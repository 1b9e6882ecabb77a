"""The OpenAPI document describes gmailService and outlookService apps' fields, as handled."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import orjson

from service.apps import App
from service.clock import iso
from service.web.openapi_doc import build_document

TENANT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
NOW = 1_780_000_000_123
GMAIL_SERVICE = ("serviceClient", "serviceClientEmail", "serviceKey")
OUTLOOK_SERVICE = ("authority", "tenant", "clientId", "clientSecret", "clientCertificate")


def errors_of(name: str, instance: Any) -> list[str]:
    """The schema errors of one instance of a component schema."""
    root = {"$ref": f"#/components/schemas/{name}", "components": build_document()["components"]}
    validator = jsonschema_rs.Draft202012Validator(root, validate_formats=True)
    return [error.message for error in validator.iter_errors(instance)]


def test_service_fields_are_described_on_create_update_and_read() -> None:
    """Each service-account field says which type it is for and what it holds."""
    schemas = build_document()["components"]["schemas"]
    for name in ("AppCreate", "AppUpdate"):
        props = schemas[name]["properties"]
        for field in GMAIL_SERVICE:
            assert "gmailService" in props[field]["description"], (name, field)
        for field in OUTLOOK_SERVICE:
            assert "outlookService" in props[field]["description"], (name, field)
        assert "outlookService" in props["cloud"]["description"]
        assert "Exchange Online" in props["baseScopes"]["description"]
        assert "JSON key file" in props["serviceKey"]["description"]
    read = schemas["App"]["properties"]
    for field in (*GMAIL_SERVICE, "authMethod"):
        assert "gmailService" in read[field]["description"], field
    assert read["serviceKey"]["const"] == "******"
    assert "outlookService" in read["tenant"]["description"]


def test_service_app_bodies_follow_what_the_handlers_take() -> None:
    """A JSON key file alone, or a PEM key with both ids; a tenant id with secret or certificate."""
    key_file = orjson.dumps({"private_key": "-----BEGIN PRIVATE KEY-----"}).decode()
    gmail: dict[str, Any] = {"provider": "gmailService", "serviceKey": key_file}
    assert errors_of("AppCreate", gmail) == []
    pem = {**gmail, "serviceKey": "-----BEGIN PRIVATE KEY-----\n..."}
    assert errors_of("AppCreate", pem)  # a PEM key does not name the service account
    assert errors_of("AppCreate", {**pem, "serviceClient": "1", "serviceClientEmail": "a@b"}) == []
    outlook = {"provider": "outlookService", "clientId": "c", "clientSecret": "s"}
    assert errors_of("AppCreate", outlook)  # no tenant
    assert errors_of("AppCreate", {**outlook, "authority": "common"})
    assert errors_of("AppCreate", {**outlook, "authority": TENANT, "cloud": "dod"}) == []
    certified = {"provider": "outlookService", "clientId": "c", "clientCertificate": "PEM"}
    assert errors_of("AppCreate", {**certified, "tenant": TENANT, "baseScopes": "imap"}) == []


def test_service_app_views_match_the_app_schema() -> None:
    """App.public() of a gmailService and an outlookService app validates."""
    stamps = {"created": iso(NOW), "updated": iso(NOW)}
    gmail = App(
        id="ws",
        provider="gmailService",
        client_id="",
        fields={**stamps, "serviceClient": "1", "serviceClientEmail": "sa@p.iam"},
        encrypted_service_key="sealed",
    )
    outlook = App(
        id="exo",
        provider="outlookService",
        client_id="cid",
        fields={**stamps, "tenant": TENANT, "cloud": "dod", "baseScopes": "imap"},
        encrypted_secret="sealed",
    )
    for app in (gmail, outlook):
        view = app.public(2, "http://127.0.0.1:8080")
        assert errors_of("App", view) == [], view
    assert gmail.public(0, "")["authMethod"] == "serviceKey"
