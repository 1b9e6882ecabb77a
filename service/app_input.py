"""OAuth2 app input in EmailEngine's vocabulary: validated into the fields of the app's hash."""

from __future__ import annotations

from typing import Any

import orjson

from service import app_credentials, errors, limits, validate
from service.app_mail import MAIL_FIELDS
from service.config import Config
from service.crypto.cipher import Cipher
from service.grant_deadline import DECLARATIONS, check_declarations
from service.outbound.urls import check_outbound_url
from service.providers import (
    BASE_SCOPES,
    ENDPOINT_FIELDS,
    GOOGLE_KINDS,
    KINDS,
    MICROSOFT_CLOUDS,
    MICROSOFT_KINDS,
    MICROSOFT_TENANTS,
)
from service.service_key import parse_service_key

INPUT_SEALED = ("clientSecret", "serviceKey")  # sealed here; the other credentials: app_credentials
SEALED_FIELDS = (*INPUT_SEALED, *app_credentials.SEALED)  # encrypted, bound to app:<id>:<field>
FROZEN_FIELDS = ("issuer", "tenant", "cloud", *ENDPOINT_FIELDS)
SERVICE_FIELDS = ("serviceClient", "serviceClientEmail")  # gmailService only
TEXT_FIELDS = (
    "name", "description", "title", "clientId", "redirectUrl", "tenant", "cloud",
    "baseScopes", *SERVICE_FIELDS, "issuer", *ENDPOINT_FIELDS, *DECLARATIONS,
)  # fmt: skip
LIST_FIELDS = {"extraScopes": "additionalScopes", "skipScopes": "skipScopes"}  # input -> hash
INPUT_FIELDS = {
    "id", "provider", "enabled", "clientSecret", "serviceKey", "authority",
    "additionalScopes", *LIST_FIELDS, *TEXT_FIELDS, *app_credentials.INPUT, *MAIL_FIELDS,
}  # fmt: skip
EE_CLOUDS = tuple(MICROSOFT_CLOUDS)


def with_key_file_fields(kind: object, body: dict[str, Any]) -> dict[str, Any]:
    """A gmailService body with the client id and email its JSON key file names.

    They fill serviceClient and serviceClientEmail when those are not given.
    """
    raw = body.get("serviceKey")
    if kind != "gmailService" or not isinstance(raw, str) or not raw.strip().startswith("{"):
        return body
    key = parse_service_key(raw)
    found = {"serviceClient": key.client_id, "serviceClientEmail": key.client_email}
    return {**{k: v for k, v in found.items() if v}, **body}


def require_create_fields(kind: object, body: dict[str, Any]) -> str:
    """Check the provider type and the fields its apps cannot do without; return the type."""
    if kind not in KINDS:
        raise errors.InvalidInput(
            f"provider must be one of {', '.join(KINDS)}", details={"field": "provider"}
        )
    kind = str(kind)
    if kind == "gmailService":
        for name in ("serviceClient", "serviceClientEmail"):
            validate.string(body, name, required=True, max_len=limits.APP_TEXT_MAX)
        validate.string(body, "serviceKey", required=True, max_len=limits.CLIENT_SECRET_MAX)
    else:
        validate.string(body, "clientId", required=True, max_len=limits.APP_TEXT_MAX)
        certified = body.get("clientCertificate") is not None
        validate.string(
            body, "clientSecret", required=not certified, max_len=limits.CLIENT_SECRET_MAX
        )
    if kind in MICROSOFT_KINDS and body.get("authority") is None and body.get("tenant") is None:
        raise errors.InvalidInput("authority is required", details={"field": "authority"})
    return kind


def text_pairs(body: dict[str, Any]) -> dict[str, str]:
    """The body's text fields (authority is stored as tenant); None values are left out."""
    if body.get("authority") is not None:
        body = {**body, "tenant": body["authority"]}
    pairs: dict[str, str] = {}
    for name in TEXT_FIELDS:
        if body.get(name) is not None:
            value = validate.string(body, name, max_len=limits.APP_TEXT_MAX)
            pairs[name] = str(value).strip()
    return pairs


def list_pairs(body: dict[str, Any]) -> dict[str, str]:
    """The scope lists (extraScopes, alias additionalScopes; skipScopes) and enabled."""
    pairs: dict[str, str] = {}
    for name in ("extraScopes", "skipScopes", "additionalScopes"):
        if name in body and body[name] is None:
            raise errors.InvalidInput(f"{name} cannot be null", details={"field": name})
        if name != "additionalScopes" and name in body and not isinstance(body[name], list):
            raise errors.InvalidInput(f"{name} must be an array", details={"field": name})
    if body.get("additionalScopes") is not None and body.get("extraScopes") is None:
        body = {**body, "extraScopes": body["additionalScopes"]}
    for name, stored in LIST_FIELDS.items():
        if body.get(name) is not None:
            pairs[stored] = orjson.dumps(validate.scopes(body[name], name)).decode()
    enabled = validate.boolean(body, "enabled")
    if enabled is not None:
        pairs["enabled"] = "true" if enabled else "false"
    return pairs


def sealed_pairs(kind: str, body: dict[str, Any], app_id: str, cipher: Cipher) -> dict[str, str]:
    """The secrets, encrypted for this app; serviceKey belongs to gmailService apps only."""
    if body.get("serviceKey") not in (None, False) and kind != "gmailService":
        raise errors.InvalidInput(
            "serviceKey belongs to gmailService apps only", details={"field": "serviceKey"}
        )
    pairs: dict[str, str] = {}
    for name in INPUT_SEALED:
        if body.get(name) in (None, False):
            continue
        value = str(validate.string(body, name, max_len=limits.CLIENT_SECRET_MAX)).strip()
        if name == "serviceKey":
            parse_service_key(value)  # refused now, not at the first token request
        pairs[name] = cipher.encrypt(value, f"app:{app_id}:{name}")
    return pairs


def check_kind_fields(
    kind: str, pairs: dict[str, str], kept: dict[str, str], config: Config
) -> None:
    """Fields that apply to some provider types only, and their values."""
    for name in [f for f in ("issuer", "redirectUrl", *ENDPOINT_FIELDS) if f in pairs]:
        allow = config.allow_private_urls or name == "redirectUrl"
        check_outbound_url(pairs[name], name, allow_private=allow)
    overrides = [f for f in ("issuer", *ENDPOINT_FIELDS) if f in pairs]
    if kind != "oidc" and overrides and not config.allow_endpoint_overrides:
        raise errors.InvalidInput(
            f"{kind} apps use built-in endpoints; overriding {', '.join(overrides)} needs "
            "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES=true",
            details={"fields": overrides},
        )
    if pairs.get("baseScopes", "imap") not in (*BASE_SCOPES, "none"):
        raise errors.InvalidInput(
            f"baseScopes must be one of {', '.join(BASE_SCOPES)}, none",
            details={"field": "baseScopes"},
        )
    check_declarations(kind, pairs)
    if kind in MICROSOFT_KINDS:
        _check_microsoft(kind, pairs)
    elif "tenant" in pairs or "cloud" in pairs:
        raise errors.InvalidInput(
            "authority (tenant) and cloud apply to outlook apps only", details={"field": "cloud"}
        )
    if kind not in GOOGLE_KINDS or kind == "gmail":
        wrong = [f for f in SERVICE_FIELDS if f in pairs]
        if wrong:
            raise errors.InvalidInput(
                f"{', '.join(wrong)} belong to gmailService apps only", details={"fields": wrong}
            )
    if kind == "oidc":
        merged = {**kept, **pairs}
        if "issuer" not in merged and "tokenUrl" not in merged:
            raise errors.InvalidInput(
                "oidc apps need issuer (for discovery) or tokenUrl",
                details={"fields": ["issuer", "tokenUrl"]},
            )


def _check_microsoft(kind: str, pairs: dict[str, str]) -> None:
    tenant = pairs.get("tenant")
    if tenant is not None:
        named = tenant in MICROSOFT_TENANTS
        if (not named and not validate.APP_ID.fullmatch(tenant)) or (
            named and kind == "outlookService"
        ):
            raise errors.InvalidInput("authority is not valid", details={"field": "authority"})
    if pairs.get("cloud", "global") not in MICROSOFT_CLOUDS:
        raise errors.InvalidInput(
            f"cloud must be one of {', '.join(EE_CLOUDS)}", details={"field": "cloud"}
        )
