"""OpenAPI component schemas: request and response bodies, headers, security."""

from __future__ import annotations

from typing import Any

from service.accounts import STATUSES
from service.grant_deadline import DECLARATIONS, PLATFORMS, PUBLISHING_STATUSES
from service.limits import (
    ACCESS_TOKEN_MAX,
    APP_TEXT_MAX,
    CERTIFICATE_MAX,
    CLIENT_SECRET_MAX,
    HEADER_VALUE_MAX,
    NAME_MAX,
    REFRESH_TOKEN_MAX,
    SCOPES_MAX,
    SERVICE_SECRET_MAX,
    USER_MAX,
)
from service.providers import (
    BASE_SCOPES,
    ENDPOINT_FIELDS,
    KINDS,
    MICROSOFT_CLOUDS,
    MICROSOFT_TENANTS,
)
from service.validate import ACCOUNT_ID, APP_ID, SCOPE
from service.web.openapi_app_fields import SERVICE_ACCOUNT, described
from service.web.openapi_consent import (
    account_rule,
    authorize_fields,
    consent_schemas,
)
from service.web.openapi_ee import (
    ee_account_props,
    ee_account_view,
    ee_import_props,
    ee_page_props,
    ee_schemas,
)
from service.web.openapi_mail import mail_app_fields, mail_check_schemas
from service.web.openapi_webhooks import (
    webhook_event_schema,
    webhook_schemas,
)
from service.webhooks.emailengine import FORMATS
from service.webhooks.events import EVENTS
from service.webhooks.headers import VALUE_PATTERN, name_pattern

Schema = dict[str, Any]

ACCOUNT_PATTERN = f"^{ACCOUNT_ID.pattern}$"
APP_PATTERN = f"^{APP_ID.pattern}$"
# A space-separated scope string; each scope must end at whitespace or the end (no backtracking).
SCOPE_STRING_PATTERN = rf"^\s*(?:{SCOPE.pattern}(?:\s+|$)){{0,{SCOPES_MAX}}}$"
# An http(s) URL with a host and no credentials (service/outbound/urls.py refuses private hosts).
# Host characters: none that ends or splits a host, nor one whose NFKC form does (urlsplit).
_NOT_HOST = (
    r"\s/?#@\[\]\u2047-\u2049\u2100\u2101\u2105\u2106\u2a74\ufe13\ufe16\ufe47\ufe48"
    r"\ufe55\ufe56\ufe5f\ufe6b\uff03\uff0f\uff1a\uff1f\uff20\uff3b\uff3d"
)
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[^:{_NOT_HOST}][^{_NOT_HOST}]*(?:[/?#]\S*)?$"


def schema_type(*types: str, **keywords: Any) -> Schema:
    """A schema of one JSON type, or of several (e.g. "string", "null")."""
    return {"type": types[0] if len(types) == 1 else list(types), **keywords}


def _each(names: str, *types: str, **keywords: Any) -> Schema:
    """The same schema for each of the space-separated property names."""
    return {name: schema_type(*types, **keywords) for name in names.split()}


def ref(name: str, kind: str = "schemas") -> Schema:
    """A $ref to a component."""
    return {"$ref": f"#/components/{kind}/{name}"}


def _text(max_len: int, *, nullable: bool = False) -> Schema:
    """A non-empty string; a nullable one may be null, which the handlers take as absent."""
    return schema_type("string", *(["null"] if nullable else []), minLength=1, maxLength=max_len)


def _time(*types: str) -> Schema:
    return schema_type(
        "string", *types, format="date-time", description="ISO 8601 UTC, milliseconds"
    )


def _strings(**keywords: Any) -> Schema:
    return schema_type("array", items=schema_type("string"), **keywords)


def _kind() -> Schema:
    return schema_type(
        "string", enum=list(KINDS), description="provider type (EmailEngine's, plus oidc)"
    )


def _obj(props: Schema, *, required: tuple[str, ...] | None = None, closed: bool = False) -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    schema = schema_type(
        "object", properties=props, required=list(props if required is None else required)
    )
    if closed:
        schema["additionalProperties"] = False
    return schema


def _scopes_input() -> Schema:
    return {
        "description": "A list of scopes or one space-separated string; duplicates are dropped.",
        "anyOf": [
            schema_type(
                "array",
                maxItems=SCOPES_MAX,
                items=schema_type("string", pattern=f"^{SCOPE.pattern}$"),
            ),
            schema_type("string", pattern=SCOPE_STRING_PATTERN),
        ],
    }


def _account_schemas() -> Schema:
    account = _obj(
        {
            **_each("account app user", "string"),
            **_each("name reason", "string", "null"),
            **{name: _time("null") for name in ("expires", "refreshedAt", "created", "updated")},
            "provider": _kind(),
            "status": schema_type("string", enum=list(STATUSES)),
            "scopes": _strings(),
            "attempts": schema_type("integer", minimum=0),
            "lastError": schema_type("object", "null"),
        }
    )
    item = _obj({**account["properties"], **ee_account_props()})
    page = {
        "accounts": schema_type("array", items=ref("AccountListItem")),
        "pages": schema_type("integer", minimum=0),
        **ee_page_props(),
    }
    return {
        "Account": account,
        "AccountListItem": item,
        "AccountView": ee_account_view(item),
        "AccountPage": _obj({**_each("total page", "integer", minimum=0), **page}),
        "AccountImported": _obj(
            {
                "account": schema_type("string"),
                "state": schema_type("string", enum=["new", "existing"]),
            }
        ),
        "AccountDeleted": _obj(
            {
                "account": schema_type("string"),
                "deleted": schema_type("boolean"),
                "revoked": schema_type(
                    "boolean", description="the provider revoked the refresh token"
                ),
                "reason": schema_type("string", "null", description="why it was not revoked"),
            },
            required=("account", "deleted", "revoked"),
        ),
        "AccountRefreshed": _obj(
            {
                "account": schema_type("string"),
                "refreshed": schema_type("boolean", const=True),
                "expires": _time(),
                "scopes": _strings(),
            }
        ),
    }


def _account_import_schema() -> Schema:
    authorize, rules = authorize_fields(URL_PATTERN)
    oauth2 = _obj(
        {
            "provider": schema_type("string", pattern=APP_PATTERN, description="the OAuth2 app id"),
            "auth": _obj(
                {"user": _text(USER_MAX), "delegatedUser": _text(USER_MAX)},
                required=("user",),
                closed=True,
            ),
            "refreshToken": _text(REFRESH_TOKEN_MAX),
            "accessToken": _text(ACCESS_TOKEN_MAX, nullable=True),
            "expires": _time("null"),
            "scopes": _scopes_input(),
            **authorize,
        },
        required=("provider",),
        closed=True,
    )
    account = schema_type(
        "string", "null", pattern=ACCOUNT_PATTERN, description="generated on consent"
    )
    schema = _obj(
        {
            "account": account,
            "name": _text(NAME_MAX, nullable=True),
            "oauth2": {**oauth2, "allOf": rules},
            **ee_import_props(USER_MAX),
        },
        required=("oauth2",),
        closed=True,
    )
    return {**schema, "allOf": [account_rule()]}


def _token_schema() -> Schema:
    failed = schema_type(
        "boolean", const=True, description="a refresh failed; the valid token is served"
    )
    required = ("account", "user", "accessToken", "app", "provider", "registeredScopes")
    return _obj(
        {
            **_each(" ".join(required[:4]), "string"),
            "provider": _kind(),
            "registeredScopes": _strings(description="the scopes the provider granted"),
            "expires": _time(),
            "cached": schema_type("boolean"),
            "refreshFailed": failed,
            "resource": schema_type(
                "string",
                description="with `resource` or `scopes`: the token's resource (outlook, "
                "graph, an audience URI, or default for a down-scoped token)",
            ),
        },
        required=(*required, "expires", "cached"),
    )


def _app_schemas() -> Schema:
    app = {
        **_each("id name redirectUrl", "string"),
        **_each(" ".join((*ENDPOINT_FIELDS, "issuer")), "string", "null"),
        "provider": _kind(),
        "enabled": schema_type("boolean"),
        "includeInListing": schema_type(
            "boolean", description="false for gmailService and outlookService (no consent)"
        ),
        "clientSecretSet": schema_type("boolean"),
        "credentials": _credentials_schema(),
        "additionalScopes": _strings(),
        "scopes": _strings(
            description="what a consent (or a service app's grant) asks for: baseScopes, extra,"
            " skipped; outlookService: the one .default its app-only token is for"
        ),
        **{name: _time("null") for name in ("created", "updated")},
        "error": schema_type("object", "null", description="the last app credentials error"),
    }
    optional = {
        **_each(
            "clientId clientSecret serviceKey description title authority tenant cloud "
            "serviceClient serviceClientEmail",
            "string",
        ),
        "authMethod": schema_type("string", const="serviceKey", description="gmailService"),
        "baseScopes": schema_type("string", enum=[*BASE_SCOPES, "none"]),
        "publishingStatus": schema_type("string", enum=list(PUBLISHING_STATUSES)),
        "platform": schema_type("string", enum=list(PLATFORMS)),
        "extraScopes": _strings(),
        "skipScopes": _strings(),
        "accounts": schema_type("integer", minimum=0),
        **mail_app_fields(URL_PATTERN, nullable=False),
    }
    optional = described(optional)
    optional["clientSecret"] = schema_type("string", const="******", description="set; never shown")
    optional["serviceKey"] = schema_type(
        "string", const="******", description="gmailService: the key is set; never shown"
    )
    count = schema_type("integer", minimum=0)
    return {
        "App": _obj({**app, **optional}, required=tuple(app)),
        "AppList": _obj(
            {
                **_each("total pages page", "integer"),
                "apps": schema_type("array", items=ref("App")),
            }
        ),
        "AppCreated": _obj(
            {"id": schema_type("string"), "created": schema_type("boolean", const=True)}
        ),
        "AppUpdated": _obj(
            {"id": schema_type("string"), "updated": schema_type("boolean", const=True)}
        ),
        "CredentialsPromoted": _obj(
            {
                "id": schema_type("string"),
                "promoted": schema_type("boolean", const=True),
                "credentials": _credentials_schema(),
            }
        ),
        "AppDeleted": _obj(
            {"id": schema_type("string"), "deleted": schema_type("boolean"), "accounts": count}
        ),
        "AppVerify": _obj(
            {
                "account": {"type": ["string", "null"], "maxLength": USER_MAX},
                "testConnection": {
                    "anyOf": [
                        {"type": ["boolean", "null"]},
                        {"enum": ["Y", "true", "1", "on", "N", "false", "0", "", 0, 1]},
                    ]
                },
            },
            required=(),
            closed=True,
        ),
        "AppVerified": _obj(
            {
                "app": schema_type("string"),
                "provider": schema_type("string"),
                "authMethod": {"type": ["string", "null"]},
                "account": {"type": ["string", "null"]},
                "ok": schema_type("boolean"),
                "steps": schema_type(
                    "array",
                    items=_obj(
                        {
                            **_each("id label message", "string"),
                            "status": schema_type("string", enum=["ok", "fail", "skip"]),
                            "hint": schema_type("string"),
                        },
                        required=("id", "label", "status", "message"),
                    ),
                ),
            }
        ),
        "AppCreate": _app_input_schema(create=True),
        "AppUpdate": _app_input_schema(create=False),
    }


def _credentials_schema() -> Schema:
    """The current and next client credential as shown: kind, expiry, thumbprints; no secret."""
    slot = _obj(
        {
            "type": schema_type("string", enum=["secret", "certificate"]),
            "expires": _time("null"),
            **_each("x5t x5tS256 subject", "string"),
        },
        required=("type", "expires"),
    )
    nullable_slot = {"anyOf": [slot, schema_type("null")]}
    return _obj(
        {
            "inUse": schema_type("string", enum=["current", "next"]),
            "current": nullable_slot,
            "next": dict(nullable_slot),
        },
        required=("inUse", "current", "next"),
    )


def _app_input_schema(*, create: bool) -> Schema:
    """Create and update bodies; on update a null text field resets it, a null secret is kept."""
    url = schema_type("string", "null", maxLength=APP_TEXT_MAX, pattern=URL_PATTERN)
    text = _text(APP_TEXT_MAX, nullable=True)
    authority = schema_type("string", "null", pattern=APP_PATTERN)
    props: Schema = {
        **{name: dict(url) for name in ("redirectUrl", "issuer", *ENDPOINT_FIELDS)},
        **{name: dict(text) for name in ("name", "description", "title")},
        **{name: dict(text) for name in ("serviceClient", "serviceClientEmail")},
        "enabled": schema_type("boolean", "null"),
        "clientId": _text(APP_TEXT_MAX),
        "clientSecret": _text(CLIENT_SECRET_MAX, nullable=True),
        "serviceKey": _text(CLIENT_SECRET_MAX, nullable=True),
        "nextClientSecret": _text(CLIENT_SECRET_MAX, nullable=True),
        **{
            name: _text(CERTIFICATE_MAX, nullable=True)
            for name in (
                "clientCertificate",
                "clientCertificateKey",
                "nextClientCertificate",
                "nextClientCertificateKey",
            )
        },
        **{name: _time("null") for name in ("credentialExpires", "nextCredentialExpires")},
        "baseScopes": schema_type("string", "null", enum=[*BASE_SCOPES, "none", None]),
        "publishingStatus": schema_type(
            "string",
            "null",
            enum=[*PUBLISHING_STATUSES, None],
            description="gmail, oidc: testing means refresh tokens die 7 days after consent",
        ),
        "platform": schema_type(
            "string",
            "null",
            enum=[*PLATFORMS, None],
            description="outlook: spa means refresh tokens die 24 hours after consent",
        ),
        "extraScopes": _scopes_input()["anyOf"][0],
        "skipScopes": _scopes_input()["anyOf"][0],
        "additionalScopes": _scopes_input(),
        "authority": authority,
        "tenant": dict(authority),
        "cloud": schema_type("string", "null", enum=[*MICROSOFT_CLOUDS, None]),
        **mail_app_fields(URL_PATTERN, nullable=True),
    }
    props = described(props)
    if not create:
        return _obj(props, required=(), closed=True)
    props["provider"] = _kind()
    generated = "generated when absent or empty"
    props["id"] = schema_type(
        "string", "null", pattern=f"^(?:{APP_ID.pattern})?$", description=generated
    )
    schema = _obj(props, required=("provider",), closed=True)
    return {**schema, "allOf": _kind_rules()}


def _kind_rules() -> list[Schema]:
    """What each provider type needs and refuses (outlook: authority; gmailService: its key)."""

    def kind(*names: str) -> Schema:
        return {"required": ["provider"], "properties": {"provider": {"enum": list(names)}}}

    def given(*names: str) -> Schema:
        return {"required": list(names), "properties": _each(" ".join(names), "string")}

    no_tenant = {"properties": _each("authority tenant cloud", "null")}
    no_service = {"properties": _each("serviceClient serviceClientEmail serviceKey", "null")}
    no_certificate = {
        "properties": _each(
            "clientCertificate clientCertificateKey nextClientCertificate nextClientCertificateKey",
            "null",
        )
    }
    credentials = {
        "anyOf": [given("clientId", "clientSecret"), given("clientId", "clientCertificate")]
    }
    key_file = {  # a JSON key file names the service account itself (app_input)
        "required": ["serviceKey"],
        "properties": {"serviceKey": schema_type("string", pattern=r"^\s*\{")},
    }
    named = {"not": {"enum": list(MICROSOFT_TENANTS)}}  # outlookService needs a tenant id
    no_named = {"authority": named, "tenant": named}
    return [
        {
            "if": kind("outlook", "outlookService"),
            "then": {"anyOf": [given("authority"), given("tenant")]},
            "else": no_tenant,
        },
        {
            "if": kind("gmailService"),
            "then": {"anyOf": [given(*SERVICE_ACCOUNT), key_file]},
            "else": {"allOf": [credentials, no_service]},
        },
        {"if": kind("outlookService"), "then": {"properties": no_named}},
        {"if": kind("gmail", "gmailService", "mailRu"), "then": no_certificate},
        {"if": kind("oidc"), "then": {"anyOf": [given("issuer"), given("tokenUrl")]}},
        *(
            {"if": {"not": kind(*sorted(kinds))}, "then": {"properties": _each(name, "null")}}
            for name, (_, kinds, _) in DECLARATIONS.items()
        ),
    ]


def _settings_schema(*, update: bool) -> Schema:
    url = schema_type("string", pattern=URL_PATTERN) if update else schema_type("string")
    enable = "the JSON API may only disable it: true is 403 SettingNotAllowed"
    props: Schema = {
        "enableOAuthTokensApi": schema_type("boolean", description=enable),
        "allowedRedirectUrls": schema_type("array", items=url, description="http(s) URL prefixes"),
        "webhooks": {**url, "type": ["string", "null"], "description": "the webhook URL"},
        "webhooksEnabled": schema_type("boolean"),
        "webhookEvents": {
            "anyOf": [
                {"const": "*"},
                schema_type("array", items=schema_type("string", enum=list(EVENTS))),
            ]
        },
        "webhookHeaders": schema_type(
            "object",
            description="extra headers of every delivery; framing and webhook-* names refused",
            propertyNames={"pattern": name_pattern()},
            additionalProperties=schema_type(
                "string", maxLength=HEADER_VALUE_MAX, pattern=VALUE_PATTERN
            ),
        ),
        **_webhook_format_props(update=update),
    }
    return _obj(props, required=(), closed=True) if update else _obj(props)


def _webhook_format_props(*, update: bool) -> Schema:
    """WebhookFormat and serviceSecret (the key of EmailEngine-style signatures)."""
    shown = "in clear only in the answer that set or generated it, else whether one is set"
    given = "write-only; true or false (as read) keeps the stored one"
    secret: Schema = (
        {"type": ["string", "boolean"], "minLength": 1, "maxLength": SERVICE_SECRET_MAX}
        if update
        else {"type": ["boolean", "string"]}
    )
    secret["description"] = given if update else shown
    formats = "standard: Standard Webhooks; emailengine: EmailEngine's body and X-EE-Wh-* headers"
    return {
        "webhookFormat": schema_type("string", enum=list(FORMATS), description=formats),
        "serviceSecret": secret,
    }


def components() -> Schema:
    """The document's components: schemas, headers and the bearer security scheme."""
    error = _obj(
        {
            "statusCode": schema_type("integer", minimum=400, maximum=599),
            **_each("error message code", "string"),
            "details": schema_type(
                "object", description="e.g. the provider's error and error_description"
            ),
        },
        required=("statusCode", "error", "message", "code"),
    )
    schemas = {
        "Error": error,
        **{
            name: _obj({"status": schema_type("string", const=value)})
            for name, value in (("Health", "ok"), ("Ready", "ready"))
        },
        "Document": schema_type("object", description="an OpenAPI 3.1 document"),
        "Metrics": schema_type("string", description="Prometheus text exposition format"),
        "OAuthToken": _token_schema(),
        "AccountImport": _account_import_schema(),
        **consent_schemas(URL_PATTERN, ACCOUNT_PATTERN, APP_PATTERN),
        **_account_schemas(),
        **_app_schemas(),
        **mail_check_schemas(),
        **webhook_schemas(),
        "WebhookEvent": webhook_event_schema(),
        "Settings": _settings_schema(update=False),
        "SettingsUpdate": _settings_schema(update=True),
        **ee_schemas(),
    }
    headers = {
        "RequestId": {"description": "the request id", "schema": schema_type("string")},
        "NoStore": {"required": True, "schema": schema_type("string", const="no-store")},
        "RetryAfter": {
            "description": "seconds",
            "schema": schema_type("string", pattern="^[0-9]+$"),
        },
    }
    bearer = {"type": "http", "scheme": "bearer", "description": "An API token (scope `*` is all)"}
    return {"schemas": schemas, "headers": headers, "securitySchemes": {"bearerAuth": bearer}}
