"""The OpenAPI 3.1 document of every route in service/web/routes.py, built from a routes table."""

from __future__ import annotations

from http import HTTPStatus
from importlib import metadata
from typing import Any, NamedTuple

from service import errors
from service.accounts import STATUSES
from service.events import EVENTS
from service.providers import ENDPOINT_FIELDS, KINDS, MICROSOFT_CLOUDS
from service.validate import ACCOUNT_ID, APP_ID, HEADER_NAME, SCOPE
from service.web.oauth_token import MAX_MIN_VALIDITY_S
from service.web.openapi_consent import (
    PAGE_TYPE,
    account_rule,
    authorize_fields,
    consent_schemas,
    redirect_response,
)
from service.web.openapi_webhooks import (
    webhook_event_schema,
    webhook_events,
    webhook_parameters,
    webhook_schemas,
)

Schema = dict[str, Any]

ACCOUNT_PATTERN = f"^{ACCOUNT_ID.pattern}$"
APP_PATTERN = f"^{APP_ID.pattern}$"
# A space-separated scope string; each scope must end at whitespace or the end (no backtracking).
SCOPE_STRING_PATTERN = rf"^\s*(?:{SCOPE.pattern}(?:\s+|$)){{0,100}}$"
# An http(s) URL with a host and no credentials (service/urls.py also refuses private hosts).
# Host characters: none that ends or splits a host, nor one whose NFKC form does (urlsplit).
_NOT_HOST = (
    r"\s/?#@\[\]\u2047-\u2049\u2100\u2101\u2105\u2106\u2a74\ufe13\ufe16\ufe47\ufe48"
    r"\ufe55\ufe56\ufe5f\ufe6b\uff03\uff0f\uff1a\uff1f\uff20\uff3b\uff3d"
)
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[^:{_NOT_HOST}][^{_NOT_HOST}]*(?:[/?#]\S*)?$"
STATUS_OF = {cls.code: cls.status for cls in errors.ApiError.__subclasses__()}

# Error codes (service/errors.py) every route of a kind answers; the status comes from the code.
AUTHORIZE = "Unauthorized Forbidden StoreUnavailable"  # authorize() reads the token from Redis
BODY = "InvalidJson InvalidInput PayloadTooLarge UnsupportedMediaType"  # json_body()
REFRESH = "ReauthRequired ProviderUnavailable AppCredentialsError"


class Route(NamedTuple):
    """One route as documented; `name` is its name in routes.py and the operationId."""

    name: str
    route: str  # "METHOD /path"
    summary: str
    ok: str  # the component schema of the success body
    errors: str = ""  # error codes beyond those of its token, parameters and body
    scope: str | None = "api"  # the API token scope it needs; None: no token at all
    body: str | None = None  # the component schema of its JSON request body
    status: int = 200
    query: str = ""  # its query parameters, space-separated
    html: bool = False  # a browser route: it redirects (`status`), errors are HTML pages


CALLBACK_ERRORS = (
    "InvalidState ConsentDenied CodeExchangeFailed NoRefreshToken IdTokenInvalid "
    "IdentityUnavailable UserMismatch ScopesMissing AppNotFound ProviderUnavailable "
    "StoreUnavailable"
)
LINK_ERRORS = "LinkExpired LinkUsed AppNotFound InvalidInput ProviderUnavailable StoreUnavailable"


CONTENT_TYPES = {"Metrics": "text/plain", "Page": PAGE_TYPE}
A, P, S = "/v1/account/{account}", "/v1/oauth2/{app}", "/v1/settings"
ROUTES = (
    Route("health", "GET /health", "The process is up", "Health", scope=None),
    Route("ready", "GET /ready", "Redis answers", "Ready", "StoreUnavailable", scope=None),
    Route("openapi", "GET /openapi.json", "This document", "Document", scope=None),
    Route("metrics", "GET /metrics", "Prometheus metrics", "Metrics", scope="metrics"),
    Route(
        "oauth_token",
        f"GET {A}/oauth-token",
        "The access token",
        "OAuthToken",
        f"{REFRESH} ApiEndpointDisabled",
        "oauth-tokens",
        query="minValidity",
    ),
    Route(
        "account_create",
        "POST /v1/account",
        "Import an account, or start its consent (authorize: true)",
        "AccountCreated",
        "InvalidAccountId InvalidAppId AppNotFound RedirectUrlNotAllowed ProviderUnavailable",
        body="AccountImport",
    ),
    Route(
        "authentication_form",
        "POST /v1/authentication/form",
        "A hosted consent link (signed, expiring, single-use)",
        "AuthenticationLink",
        "InvalidAccountId InvalidAppId AppNotFound RedirectUrlNotAllowed",
        body="AuthenticationForm",
    ),
    Route(
        "oauth_start",
        "GET /oauth/start",
        "Open a hosted link: on to the provider's consent screen",
        "",
        LINK_ERRORS,
        scope=None,
        status=302,
        query="link",
        html=True,
    ),
    Route(
        "oauth_callback",
        "GET /oauth/callback",
        "The provider's answer: the account is saved, the user sent to the redirectUrl",
        "Page",
        CALLBACK_ERRORS,
        scope=None,
        status=303,
        query="state code error error_description iss",
        html=True,
    ),
    Route(
        "accounts_list",
        "GET /v1/accounts",
        "List accounts",
        "AccountPage",
        query="page pageSize status",
    ),
    Route("account_get", f"GET {A}", "Show an account", "Account"),
    Route("account_delete", f"DELETE {A}", "Delete an account", "AccountDeleted"),
    Route("account_refresh", f"POST {A}/refresh", "Refresh now", "AccountRefreshed", REFRESH),
    Route("apps_list", "GET /v1/oauth2", "List OAuth2 apps", "AppList"),
    Route(
        "app_create",
        "POST /v1/oauth2",
        "Create an app",
        "App",
        "InvalidAppId AppExists",
        body="AppCreate",
        status=201,
    ),
    Route("app_get", f"GET {P}", "Show an OAuth2 app", "App"),
    Route("app_update", f"PUT {P}", "Change an OAuth2 app", "App", "AppInUse", body="AppUpdate"),
    Route("app_delete", f"DELETE {P}", "Delete an OAuth2 app", "AppDeleted", "AppInUse"),
    Route("settings_get", f"GET {S}", "Read the settings", "Settings"),
    Route(
        "settings_put",
        f"PUT {S}",
        "Change settings",
        "Settings",
        "SettingNotAllowed",
        body="SettingsUpdate",
    ),
    Route(
        "webhook_secret", f"POST {S}/webhook-secret", "Rotate the webhook secret", "WebhookSecret"
    ),
    Route(
        "webhook_deliveries",
        "GET /v1/webhooks/deliveries",
        "List deliveries",
        "Deliveries",
        query="status@deliveries limit",
    ),
    Route(
        "webhook_redeliver",
        "POST /v1/webhooks/deliveries/{id}/redeliver",
        "Queue a dead letter again",
        "Redelivered",
    ),
    Route(
        "webhook_test",
        "POST /v1/webhooks/test",
        "Send a signed test event",
        "WebhookTest",
        "WebhookNotConfigured",
    ),
)


WEBHOOK_PARAMETERS = webhook_parameters()


def _t(*types: str, **keywords: Any) -> Schema:
    """A schema of one JSON type, or of several (e.g. "string", "null")."""
    return {"type": types[0] if len(types) == 1 else list(types), **keywords}


def _each(names: str, *types: str, **keywords: Any) -> Schema:
    """The same schema for each of the space-separated property names."""
    return {name: _t(*types, **keywords) for name in names.split()}


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _text(max_len: int, *, nullable: bool = False) -> Schema:
    """A non-empty string; a nullable one may be null, which the handlers take as absent."""
    return _t("string", *(["null"] if nullable else []), minLength=1, maxLength=max_len)


def _time(*types: str) -> Schema:
    return _t("string", *types, format="date-time", description="ISO 8601 UTC, milliseconds")


def _strings(**keywords: Any) -> Schema:
    return _t("array", items=_t("string"), **keywords)


def _kind() -> Schema:
    return _t("string", enum=list(KINDS), description="provider kind")


def _obj(props: Schema, *, required: tuple[str, ...] | None = None, closed: bool = False) -> Schema:
    """An object schema; every property is required unless `required` says otherwise."""
    schema = _t("object", properties=props, required=list(props if required is None else required))
    if closed:
        schema["additionalProperties"] = False
    return schema


def _scopes_input() -> Schema:
    return {
        "description": "A list of scopes or one space-separated string; duplicates are dropped.",
        "anyOf": [
            _t("array", maxItems=100, items=_t("string", pattern=f"^{SCOPE.pattern}$")),
            _t("string", pattern=SCOPE_STRING_PATTERN),
        ],
    }


def _account_schemas() -> Schema:
    account = _obj(
        {
            **_each("account app user", "string"),
            **_each("name reason", "string", "null"),
            **{name: _time("null") for name in ("expires", "refreshedAt", "created", "updated")},
            "provider": _kind(),
            "status": _t("string", enum=list(STATUSES)),
            "scopes": _strings(),
            "attempts": _t("integer", minimum=0),
            "lastError": _t("object", "null"),
        }
    )
    page = {"accounts": _t("array", items=_ref("Account")), "pages": _t("integer", minimum=1)}
    return {
        "Account": account,
        "AccountPage": _obj({**_each("total page", "integer", minimum=0), **page}),
        "AccountImported": _obj(
            {"account": _t("string"), "state": _t("string", enum=["new", "existing"])}
        ),
        "AccountDeleted": _obj(
            {
                "account": _t("string"),
                "deleted": _t("boolean"),
                "revoked": _t("boolean", description="the provider revoked the refresh token"),
                "reason": _t("string", "null", description="why it was not revoked"),
            },
            required=("account", "deleted", "revoked"),
        ),
        "AccountRefreshed": _obj(
            {
                "account": _t("string"),
                "refreshed": _t("boolean", const=True),
                "expires": _time(),
                "scopes": _strings(),
            }
        ),
    }


def _account_import_schema() -> Schema:
    authorize, rules = authorize_fields(URL_PATTERN)
    oauth2 = _obj(
        {
            "provider": _t("string", pattern=APP_PATTERN, description="the OAuth2 app id"),
            "auth": _obj({"user": _text(320)}, closed=True),
            "refreshToken": _text(8192),
            "accessToken": _text(16384, nullable=True),
            "expires": _time("null"),
            "scopes": _scopes_input(),
            **authorize,
        },
        required=("provider",),
        closed=True,
    )
    account = _t("string", "null", pattern=ACCOUNT_PATTERN, description="generated on consent")
    schema = _obj(
        {
            "account": account,
            "name": _text(256, nullable=True),
            "oauth2": {**oauth2, "allOf": rules},
        },
        required=("oauth2",),
        closed=True,
    )
    return {**schema, "allOf": [account_rule()]}


def _token_schema() -> Schema:
    failed = _t("boolean", const=True, description="a refresh failed; the valid token is served")
    required = ("account", "user", "accessToken", "app", "provider", "registeredScopes")
    return _obj(
        {
            **_each(" ".join(required[:4]), "string"),
            "provider": _kind(),
            "registeredScopes": _strings(description="the scopes the provider granted"),
            "expires": _time(),
            "cached": _t("boolean"),
            "refreshFailed": failed,
        },
        required=(*required, "expires", "cached"),
    )


def _app_schemas() -> Schema:
    app = {
        **_each("id name clientId redirectUrl", "string"),
        **_each(" ".join((*ENDPOINT_FIELDS, "issuer")), "string", "null"),
        "provider": _kind(),
        "clientSecretSet": _t("boolean"),
        "additionalScopes": _strings(),
        "scopes": _strings(),
        "accounts": _t("integer", minimum=0),
        **{name: _time("null") for name in ("created", "updated")},
        "error": _t("object", "null", description="the last app credentials error"),
    }
    return {
        "App": _obj({**app, **_each("tenant cloud", "string")}, required=tuple(app)),
        "AppList": _obj(
            {"total": _t("integer", minimum=0), "apps": _t("array", items=_ref("App"))}
        ),
        "AppDeleted": _obj({"id": _t("string"), "deleted": _t("boolean", const=True)}),
        "AppCreate": _app_input_schema(create=True),
        "AppUpdate": _app_input_schema(create=False),
    }


def _app_input_schema(*, create: bool) -> Schema:
    """Create and update bodies; on update a null text field resets it, a null secret is kept."""
    url = _t("string", "null", maxLength=2048, pattern=URL_PATTERN)
    props: Schema = {
        **{name: dict(url) for name in ("redirectUrl", "issuer", *ENDPOINT_FIELDS)},
        "name": _text(2048, nullable=True),
        "provider": _kind(),
        "clientId": _text(2048),
        "clientSecret": _text(4096, nullable=not create),
        "additionalScopes": _scopes_input(),
        "tenant": _t("string", "null", pattern=APP_PATTERN, description="microsoft only"),
        "cloud": _t("string", "null", enum=[*MICROSOFT_CLOUDS, None], description="microsoft only"),
    }
    if not create:
        return _obj(props, required=(), closed=True)
    generated = "generated when absent or empty"
    props["id"] = _t("string", "null", pattern=f"^(?:{APP_ID.pattern})?$", description=generated)
    schema = _obj(props, required=("provider", "clientId", "clientSecret"), closed=True)
    return {**schema, "allOf": _kind_rules()}


def _kind_rules() -> list[Schema]:
    """Only microsoft apps take tenant and cloud; oidc apps need an issuer or a tokenUrl."""

    def kind(name: str) -> Schema:
        return {"properties": {"provider": {"const": name}}}

    def given(name: str) -> Schema:
        return {"required": [name], "properties": {name: _t("string")}}

    no_tenant = {"properties": _each("tenant cloud", "null")}
    return [
        {"if": kind("microsoft"), "else": no_tenant},
        {"if": kind("oidc"), "then": {"anyOf": [given("issuer"), given("tokenUrl")]}},
    ]


def _settings_schema(*, update: bool) -> Schema:
    url = _t("string", pattern=URL_PATTERN) if update else _t("string")
    enable = "the JSON API may only disable it: true is 403 SettingNotAllowed"
    props: Schema = {
        "enableOAuthTokensApi": _t("boolean", description=enable),
        "allowedRedirectUrls": _t("array", items=url, description="http(s) URL prefixes"),
        "webhooks": {**url, "type": ["string", "null"], "description": "the webhook URL"},
        "webhooksEnabled": _t("boolean"),
        "webhookEvents": {
            "anyOf": [{"const": "*"}, _t("array", items=_t("string", enum=list(EVENTS)))]
        },
        "webhookHeaders": _t(
            "object",
            propertyNames={"pattern": f"^{HEADER_NAME.pattern}$"},
            additionalProperties=_t("string", maxLength=4096, pattern="^[^\r\n]*$"),
        ),
    }
    return _obj(props, required=(), closed=True) if update else _obj(props)


def _components() -> Schema:
    error = _obj(
        {
            "statusCode": _t("integer", minimum=400, maximum=599),
            **_each("error message code", "string"),
            "details": _t("object", description="e.g. the provider's error and error_description"),
        },
        required=("statusCode", "error", "message", "code"),
    )
    schemas = {
        "Error": error,
        **{
            name: _obj({"status": _t("string", const=value)})
            for name, value in (("Health", "ok"), ("Ready", "ready"))
        },
        "Document": _t("object", description="an OpenAPI 3.1 document"),
        "Metrics": _t("string", description="Prometheus text exposition format"),
        "OAuthToken": _token_schema(),
        "AccountImport": _account_import_schema(),
        **consent_schemas(URL_PATTERN, ACCOUNT_PATTERN, APP_PATTERN),
        **_account_schemas(),
        **_app_schemas(),
        **webhook_schemas(),
        "WebhookEvent": webhook_event_schema(),
        "Settings": _settings_schema(update=False),
        "SettingsUpdate": _settings_schema(update=True),
    }
    headers = {
        "RequestId": {"description": "the request id", "schema": _t("string")},
        "NoStore": {"required": True, "schema": _t("string", const="no-store")},
        "RetryAfter": {"description": "seconds", "schema": _t("string", pattern="^[0-9]+$")},
    }
    bearer = {"type": "http", "scheme": "bearer", "description": "An API token (scope `*` is all)"}
    return {"schemas": schemas, "headers": headers, "securitySchemes": {"bearerAuth": bearer}}


def _parameter(name: str) -> tuple[Schema, str]:
    """A path or query parameter by name, with the error codes a bad or unknown value gets."""
    schemas = {
        "account": (_t("string", pattern=ACCOUNT_PATTERN), "InvalidAccountId AccountNotFound"),
        "app": (_t("string", pattern=APP_PATTERN), "InvalidAppId AppNotFound"),
        "minValidity": (
            _t("integer", minimum=0, maximum=MAX_MIN_VALIDITY_S, default=60),
            "InvalidMinValidity",
        ),
        "page": (_t("integer", minimum=0, maximum=1_000_000, default=0), "InvalidInput"),
        "pageSize": (_t("integer", minimum=1, maximum=1000, default=20), "InvalidInput"),
        "status": (_t("string", enum=["all", *STATUSES], default="all"), "InvalidInput"),
        "link": (_t("string", description="the signed hosted link"), "InvalidLink"),
        **{
            name: (_t("string", description="set by the provider"), "")
            for name in ("state", "code", "error", "error_description", "iss")
        },
    }
    if name in WEBHOOK_PARAMETERS:
        schema, codes, where = WEBHOOK_PARAMETERS[name]
    else:
        schema, codes = schemas[name]
        where = "path" if name in ("account", "app") else "query"
    param = {"name": name.split("@")[0], "in": where, "required": where == "path"}
    return {**param, "schema": schema}, codes


def _response(status: int, schema: str, codes: list[str] | None = None) -> Schema:
    headers: Schema = {"X-Request-Id": _ref("RequestId", "headers")}
    if codes or schema == "OAuthToken":  # errors and access tokens say Cache-Control: no-store
        headers["Cache-Control"] = _ref("NoStore", "headers")
    if codes and "ProviderUnavailable" in codes:
        headers["Retry-After"] = _ref("RetryAfter", "headers")
    response = {
        "description": HTTPStatus(status).phrase + (f": {', '.join(codes)}" if codes else ""),
        "headers": headers,
        "content": {CONTENT_TYPES.get(schema, "application/json"): {"schema": _ref(schema)}},
    }
    return {**response, "x-error-codes": codes} if codes else response


def _operation(route: Route, path: str) -> Schema:
    """The operation of one route: parameters, request body, responses, security."""
    op: Schema = {"operationId": route.name, "summary": route.summary}
    op["security"] = [{"bearerAuth": [route.scope]}] if route.scope else []
    codes = [AUTHORIZE if route.scope else "", BODY if route.body else "", route.errors]
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")] + route.query.split()
    if names:
        params = [_parameter(name) for name in names]
        op["parameters"] = [param for param, _ in params]
        codes += [param_codes for _, param_codes in params]
    if route.body:
        content = {"application/json": {"schema": _ref(route.body)}}
        op["requestBody"] = {"required": True, "content": content}
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(" ".join(codes).split()):
        by_status.setdefault(STATUS_OF[code], []).append(code)
    if route.html:
        headers = {"X-Request-Id": _ref("RequestId", "headers")}
        headers["Cache-Control"] = _ref("NoStore", "headers")
        op["responses"] = {str(route.status): redirect_response(route.status, headers)}
        if route.ok:  # a page when there is nowhere to redirect to
            op["responses"]["200"] = _response(200, route.ok)
    else:
        op["responses"] = {str(route.status): _response(route.status, route.ok)}
    for status, status_codes in sorted(by_status.items()):
        error_schema = "Page" if route.html else "Error"
        op["responses"][str(status)] = _response(status, error_schema, status_codes)
    return op


def _version() -> str:
    try:
        return metadata.version("tokenbroker")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1.0 document describing every route of the web process."""
    paths: Schema = {}
    for route in ROUTES:
        method, path = route.route.split(" ")
        paths.setdefault(path, {})[method.lower()] = _operation(route, path)
    description = "Self-hosted OAuth2 token broker: keeps access tokens fresh and serves them."
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenbroker", "version": _version(), "description": description},
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "webhooks": webhook_events(),
        "components": _components(),
    }
