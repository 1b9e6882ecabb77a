"""The OpenAPI 3.1 document of every route in service/web/routes.py, built from small helpers."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from importlib import metadata
from typing import Any

from service.accounts import STATUSES
from service.events import EVENTS
from service.providers import ENDPOINT_FIELDS, KINDS, MICROSOFT_CLOUDS
from service.validate import ACCOUNT_ID, APP_ID, SCOPE
from service.web.oauth_token import MAX_MIN_VALIDITY_S

Schema = dict[str, Any]
Errors = Mapping[int, tuple[str, ...]]
Op = tuple[str, str, Schema]  # (path, method, operation)

ACCOUNT_PATTERN = f"^{ACCOUNT_ID.pattern}$"
APP_PATTERN = f"^{APP_ID.pattern}$"
# A space-separated scope string; each run must end at whitespace or the end (no backtracking).
SCOPE_STRING_PATTERN = rf"^\s*(?:{SCOPE.pattern}(?:\s+|$))*$"

AUTH: Errors = {401: ("Unauthorized",), 403: ("Forbidden",)}
STORE: Errors = {503: ("StoreUnavailable",)}
BODY: Errors = {
    400: ("InvalidJson", "InvalidInput"),
    413: ("PayloadTooLarge",),
    415: ("UnsupportedMediaType",),
}
REFRESH: Errors = {409: ("ReauthRequired",), 503: ("ProviderUnavailable", "AppCredentialsError")}
ACCOUNT_ERRORS: Errors = {400: ("InvalidAccountId",), 404: ("AccountNotFound",)}
APP_ERRORS: Errors = {400: ("InvalidAppId",), 404: ("AppNotFound",)}


def _t(*types: str, **keywords: Any) -> Schema:
    """A schema of one JSON type, or of several (e.g. "string", "null")."""
    return {"type": types[0] if len(types) == 1 else list(types), **keywords}


def _ref(name: str, kind: str = "schemas") -> Schema:
    return {"$ref": f"#/components/{kind}/{name}"}


def _text(max_len: int, *, nullable: bool = False) -> Schema:
    """A non-empty string; a nullable one may be null (the handlers treat null as absent)."""
    return _t("string", *(["null"] if nullable else []), minLength=1, maxLength=max_len)


def _time(*, nullable: bool = False) -> Schema:
    return _t(
        "string",
        *(["null"] if nullable else []),
        format="date-time",
        description="ISO 8601 UTC with milliseconds",
    )


def _strings(**keywords: Any) -> Schema:
    return _t("array", items=_t("string"), **keywords)


def _kinds() -> Schema:
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


def _error_schema() -> Schema:
    return _obj(
        {
            "statusCode": _t("integer", minimum=400, maximum=599),
            "error": _t("string", description="HTTP reason phrase"),
            "message": _t("string"),
            "code": _t("string", description="stable error code"),
            "details": _t("object", description="e.g. the provider's error and error_description"),
        },
        required=("statusCode", "error", "message", "code"),
    )


def _account_schema() -> Schema:
    times = {
        name: _time(nullable=True) for name in ("expires", "refreshedAt", "created", "updated")
    }
    return _obj(
        {
            "account": _t("string"),
            "name": _t("string", "null"),
            "app": _t("string"),
            "provider": _kinds(),
            "user": _t("string"),
            "status": _t("string", enum=list(STATUSES)),
            "reason": _t("string", "null"),
            "scopes": _strings(),
            **times,
            "attempts": _t("integer", minimum=0),
            "lastError": _t("object", "null"),
        }
    )


def _account_import_schema() -> Schema:
    oauth2 = _obj(
        {
            "provider": _t("string", pattern=APP_PATTERN, description="the OAuth2 app id"),
            "auth": _obj({"user": _text(320)}, closed=True),
            "refreshToken": _text(8192),
            "accessToken": _text(16384, nullable=True),
            "expires": _time(nullable=True),
            "scopes": _scopes_input(),
        },
        required=("provider", "auth", "refreshToken"),
        closed=True,
    )
    return _obj(
        {
            "account": _t("string", pattern=ACCOUNT_PATTERN),
            "name": _text(256, nullable=True),
            "oauth2": oauth2,
        },
        required=("account", "oauth2"),
        closed=True,
    )


def _token_schema() -> Schema:
    failed = _t("boolean", const=True, description="a refresh failed; the valid token is served")
    return _obj(
        {
            "account": _t("string"),
            "user": _t("string"),
            "accessToken": _t("string"),
            "provider": _kinds(),
            "app": _t("string", description="the OAuth2 app id"),
            "registeredScopes": _strings(),
            "expires": _time(),
            "cached": _t("boolean"),
            "refreshFailed": failed,
        },
        required=(
            "account",
            "user",
            "accessToken",
            "provider",
            "app",
            "registeredScopes",
            "expires",
            "cached",
        ),
    )


def _app_schema() -> Schema:
    props: Schema = {
        "id": _t("string"),
        "name": _t("string"),
        "provider": _kinds(),
        "clientId": _t("string"),
        "clientSecretSet": _t("boolean"),
        "additionalScopes": _strings(),
        "scopes": _strings(),
        "redirectUrl": _t("string"),
        **{name: _t("string", "null") for name in (*ENDPOINT_FIELDS, "issuer")},
        "accounts": _t("integer", minimum=0),
        "created": _time(nullable=True),
        "updated": _time(nullable=True),
        "error": _t("object", "null", description="the last app credentials error"),
    }
    required = tuple(props)
    return _obj({**props, "tenant": _t("string"), "cloud": _t("string")}, required=required)


def _app_input_schema(*, create: bool) -> Schema:
    """Create and update bodies; on update a null text field resets it, a null secret is kept."""
    props: Schema = {
        name: _text(2048, nullable=True)
        for name in ("name", "redirectUrl", "issuer", *ENDPOINT_FIELDS)
    }
    props.update(
        {
            "provider": _kinds(),
            "clientId": _text(1024) if create else _text(2048, nullable=True),
            "clientSecret": _text(4096, nullable=not create),
            "additionalScopes": _scopes_input(),
            "tenant": _t(
                "string",
                "null",
                pattern=APP_PATTERN,
                description="microsoft only: common, organizations, consumers or an id",
            ),
            "cloud": _t("string", "null", enum=[*MICROSOFT_CLOUDS, None], description="microsoft"),
        }
    )
    if not create:
        return _obj(props, required=(), closed=True)
    props["id"] = _t(
        "string",
        "null",
        pattern=f"^(?:{APP_ID.pattern})?$",
        description="generated when absent or empty",
    )
    return _obj(props, required=("provider", "clientId", "clientSecret"), closed=True)


def _settings_schema(*, update: bool) -> Schema:
    events = _t("array", items=_t("string", enum=list(EVENTS)))
    props: Schema = {
        "enableOAuthTokensApi": _t(
            "boolean", description="the JSON API may only disable it: true is 403 SettingNotAllowed"
        ),
        "allowedRedirectUrls": _strings(description="http(s) URL prefixes"),
        "webhooks": _t("string", "null", description="the webhook http(s) URL"),
        "webhooksEnabled": _t("boolean"),
        "webhookEvents": {"anyOf": [{"const": "*"}, events]},
        "webhookHeaders": _t("object", additionalProperties=_t("string")),
    }
    return _obj(props, required=(), closed=True) if update else _obj(props)


def _components() -> Schema:
    schemas = {
        "Error": _error_schema(),
        "Account": _account_schema(),
        "AccountImport": _account_import_schema(),
        "OAuthToken": _token_schema(),
        "App": _app_schema(),
        "AppCreate": _app_input_schema(create=True),
        "AppUpdate": _app_input_schema(create=False),
        "Settings": _settings_schema(update=False),
        "SettingsUpdate": _settings_schema(update=True),
    }
    headers = {
        "RequestId": {
            "description": "the request id (X-Request-Id of the request when sent)",
            "schema": _t("string"),
        },
        "NoStore": {"required": True, "schema": _t("string", const="no-store")},
        "RetryAfter": {
            "description": "seconds to wait",
            "schema": _t("string", pattern="^[0-9]+$"),
        },
    }
    bearer = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API token with the scope named per operation, or `*`.",
    }
    return {"schemas": schemas, "headers": headers, "securitySchemes": {"bearerAuth": bearer}}


def _ok(description: str, schema: Schema, *, no_store: bool = False) -> Schema:
    headers: Schema = {"X-Request-Id": _ref("RequestId", "headers")}
    if no_store:
        headers["Cache-Control"] = _ref("NoStore", "headers")
    return {
        "description": description,
        "headers": headers,
        "content": {"application/json": {"schema": schema}},
    }


def _error(status: int, codes: tuple[str, ...]) -> Schema:
    response = _ok(f"{HTTPStatus(status).phrase}: {', '.join(codes)}", _ref("Error"), no_store=True)
    if "ProviderUnavailable" in codes:
        response["headers"]["Retry-After"] = _ref("RetryAfter", "headers")
    response["x-error-codes"] = list(codes)
    return response


def _merge(*groups: Errors) -> dict[int, tuple[str, ...]]:
    """Join status -> error codes maps, keeping each code once and the statuses in order."""
    merged: dict[int, tuple[str, ...]] = {}
    for group in groups:
        for status, codes in group.items():
            merged[status] = tuple(dict.fromkeys((*merged.get(status, ()), *codes)))
    return dict(sorted(merged.items()))


def _query(name: str, description: str, **schema: Any) -> Schema:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": _t(schema.pop("type", "integer"), **schema),
    }


def _path_param(name: str) -> Schema:
    pattern = ACCOUNT_PATTERN if name == "account" else APP_PATTERN
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"the {name} id",
        "schema": _t("string", pattern=pattern),
    }


def _op(
    name: str,
    summary: str,
    tag: str,
    ok: tuple[int, Schema],
    errors: Errors,
    *,
    scope: str | None = "api",
    params: tuple[Schema, ...] = (),
    body: str | None = None,
) -> Schema:
    """One operation: operationId is the route's name; errors maps status to error codes."""
    status, response = ok
    op: Schema = {
        "operationId": name,
        "summary": summary,
        "tags": [tag],
        "security": [{"bearerAuth": [scope]}] if scope else [],
    }
    if params:
        op["parameters"] = list(params)
    if body:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(body)}},
        }
    op["responses"] = {
        str(status): response,
        **{str(code): _error(code, names) for code, names in errors.items()},
    }
    return op


def _system_ops() -> list[Op]:
    def status(value: str) -> Schema:
        return _ok(value, _obj({"status": _t("string", const=value)}))

    document = _ok("this document", _t("object"))
    return [
        (
            "/health",
            "get",
            _op("health", "The process is up", "System", (200, status("ok")), {}, scope=None),
        ),
        (
            "/ready",
            "get",
            _op("ready", "Redis answers", "System", (200, status("ready")), STORE, scope=None),
        ),
        (
            "/openapi.json",
            "get",
            _op("openapi", "The OpenAPI document", "System", (200, document), {}, scope=None),
        ),
    ]


def _account_ops() -> list[Op]:
    one, account = "/v1/account/{account}", (_path_param("account"),)
    errors = _merge(AUTH, STORE, ACCOUNT_ERRORS)
    page = _obj(
        {
            "total": _t("integer", minimum=0),
            "page": _t("integer", minimum=0),
            "pages": _t("integer", minimum=1),
            "accounts": _t("array", items=_ref("Account")),
        }
    )
    query = (
        _query("page", "page number, from 0", minimum=0, maximum=1_000_000, default=0),
        _query("pageSize", "accounts per page", minimum=1, maximum=1000, default=20),
        _query(
            "status",
            "only accounts with this status",
            type="string",
            enum=["all", *STATUSES],
            default="all",
        ),
    )
    imported = _obj({"account": _t("string"), "state": _t("string", enum=["new", "existing"])})
    deleted = _obj({"account": _t("string"), "deleted": _t("boolean")})
    refreshed = _obj(
        {
            "account": _t("string"),
            "refreshed": _t("boolean", const=True),
            "expires": _time(),
            "scopes": _strings(),
        }
    )
    return [
        (
            "/v1/account",
            "post",
            _op(
                "account_create",
                "Import an account with its refresh token",
                "Accounts",
                (200, _ok("imported", imported)),
                _merge(
                    AUTH,
                    STORE,
                    BODY,
                    {400: ("InvalidAccountId", "InvalidAppId"), 404: ("AppNotFound",)},
                ),
                body="AccountImport",
            ),
        ),
        (
            "/v1/accounts",
            "get",
            _op(
                "accounts_list",
                "List accounts by page",
                "Accounts",
                (200, _ok("a page", page)),
                _merge({400: ("InvalidInput",)}, AUTH, STORE),
                params=query,
            ),
        ),
        (
            one,
            "get",
            _op(
                "account_get",
                "Show an account (never a token)",
                "Accounts",
                (200, _ok("the account", _ref("Account"))),
                errors,
                params=account,
            ),
        ),
        (
            one,
            "delete",
            _op(
                "account_delete",
                "Delete an account",
                "Accounts",
                (200, _ok("deleted", deleted)),
                errors,
                params=account,
            ),
        ),
        (
            f"{one}/refresh",
            "post",
            _op(
                "account_refresh",
                "Refresh the account's token now",
                "Accounts",
                (200, _ok("refreshed", refreshed)),
                _merge(errors, REFRESH),
                params=account,
            ),
        ),
    ]


def _token_ops() -> list[Op]:
    min_validity = _query(
        "minValidity",
        "seconds the token must stay valid, else it is refreshed first",
        minimum=0,
        maximum=MAX_MIN_VALIDITY_S,
        default=60,
    )
    errors = _merge(
        AUTH,
        STORE,
        ACCOUNT_ERRORS,
        REFRESH,
        {400: ("InvalidMinValidity",), 403: ("ApiEndpointDisabled",)},
    )
    return [
        (
            "/v1/account/{account}/oauth-token",
            "get",
            _op(
                "oauth_token",
                "The account's currently valid access token",
                "Tokens",
                (200, _ok("the token", _ref("OAuthToken"), no_store=True)),
                errors,
                scope="oauth-tokens",
                params=(_path_param("account"), min_validity),
            ),
        )
    ]


def _app_ops() -> list[Op]:
    one, app, tag = "/v1/oauth2/{app}", (_path_param("app"),), "OAuth2 apps"
    listed = _obj({"total": _t("integer", minimum=0), "apps": _t("array", items=_ref("App"))})
    deleted = _obj({"id": _t("string"), "deleted": _t("boolean", const=True)})
    errors, in_use = _merge(APP_ERRORS, AUTH, STORE), {409: ("AppInUse",)}
    return [
        (
            "/v1/oauth2",
            "get",
            _op(
                "apps_list",
                "List OAuth2 apps",
                tag,
                (200, _ok("every app", listed)),
                _merge(AUTH, STORE),
            ),
        ),
        (
            "/v1/oauth2",
            "post",
            _op(
                "app_create",
                "Create an OAuth2 app",
                tag,
                (201, _ok("created", _ref("App"))),
                _merge(BODY, {400: ("InvalidAppId",), 409: ("AppExists",)}, AUTH, STORE),
                body="AppCreate",
            ),
        ),
        (
            one,
            "get",
            _op(
                "app_get",
                "Show an OAuth2 app",
                tag,
                (200, _ok("the app", _ref("App"))),
                errors,
                params=app,
            ),
        ),
        (
            one,
            "put",
            _op(
                "app_update",
                "Change some fields of an OAuth2 app",
                tag,
                (200, _ok("the changed app", _ref("App"))),
                _merge(errors, BODY, in_use),
                params=app,
                body="AppUpdate",
            ),
        ),
        (
            one,
            "delete",
            _op(
                "app_delete",
                "Delete an OAuth2 app without accounts",
                tag,
                (200, _ok("deleted", deleted)),
                _merge(errors, in_use),
                params=app,
            ),
        ),
    ]


def _settings_ops() -> list[Op]:
    settings = _ok("every setting", _ref("Settings"))
    return [
        (
            "/v1/settings",
            "get",
            _op(
                "settings_get",
                "Read every setting",
                "Settings",
                (200, settings),
                _merge(AUTH, STORE),
            ),
        ),
        (
            "/v1/settings",
            "put",
            _op(
                "settings_put",
                "Change some settings",
                "Settings",
                (200, settings),
                _merge(BODY, AUTH, {403: ("SettingNotAllowed",)}, STORE),
                body="SettingsUpdate",
            ),
        ),
    ]


def _version() -> str:
    try:
        return metadata.version("tokenbroker")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def build_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1.0 document describing every route of the web process."""
    paths: Schema = {}
    for path, method, op in (
        *_system_ops(),
        *_token_ops(),
        *_account_ops(),
        *_app_ops(),
        *_settings_ops(),
    ):
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tokenbroker",
            "version": _version(),
            "description": "Self-hosted OAuth2 token broker: keeps provider access tokens "
            "fresh and serves them over HTTP.",
        },
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": _components(),
    }
