"""The OpenAPI 3.1 document of every route in service/web/routes.py, built from a routes table."""

from __future__ import annotations

from http import HTTPStatus
from importlib import metadata
from typing import Any, NamedTuple

from service import errors
from service.accounts import STATUSES
from service.limits import MIN_VALIDITY_S, PAGE, PAGE_SIZE
from service.resources import NAMES
from service.web.ee_settings import EE_KEYS
from service.web.openapi_audit import audit_parameters, audit_schemas
from service.web.openapi_consent import (
    PAGE_TYPE,
    redirect_response,
)
from service.web.openapi_ee import ee_parameters, resource_schema
from service.web.openapi_schemas import (
    ACCOUNT_PATTERN,
    APP_PATTERN,
    SCOPE_STRING_PATTERN,
    URL_PATTERN,
    components,
    ref,
    schema_type,
)
from service.web.openapi_webhooks import (
    webhook_events,
    webhook_parameters,
)

Schema = dict[str, Any]
__all__ = ["SCOPE_STRING_PATTERN", "URL_PATTERN", "build_document"]

STATUS_OF = errors.statuses()

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
    form: str | None = None  # the component schema of its url-encoded form body


CALLBACK_ERRORS = (
    "InvalidState ConsentDenied CodeExchangeFailed NoRefreshToken IdTokenInvalid "
    "IdentityUnavailable UserMismatch ScopesMissing AppNotFound ProviderUnavailable "
    "StoreUnavailable AccountAppMismatch BrowserMismatch"
)
LINK_ERRORS = "LinkExpired LinkUsed AppNotFound InvalidInput ProviderUnavailable StoreUnavailable"
START_ERRORS = f"InvalidLink FormTokenInvalid UnsupportedMediaType PayloadTooLarge {LINK_ERRORS}"


CONTENT_TYPES = {"Metrics": "text/plain", "Page": PAGE_TYPE}
OP, Q = "*", "UnknownQueryParameter"  # the API token routes need operator authority
EE_TOKEN_ROUTES = (
    Route(
        "tokens_list",
        "GET /v1/tokens",
        "List API tokens",
        "ApiTokenPage",
        Q,
        OP,
        query="account@tokens page pageSize",
    ),
    Route(
        "token_create",
        "POST /v1/tokens",
        "Create an API token (shown once)",
        "ApiTokenCreated",
        f"{Q} AccountNotFound InvalidAccountId",
        OP,
        body="ApiTokenCreate",
    ),
    Route("token_get", "GET /v1/tokens/{token}", "Show an API token", "ApiTokenInfo", Q, OP),
    Route(
        "token_delete",
        "DELETE /v1/tokens/{token}",
        "Delete an API token by id",
        "ApiTokenDeleted",
        Q,
        OP,
    ),
    Route(
        "tokens_account",
        "GET /v1/tokens/account/{account}",
        "An account's API tokens",
        "ApiTokenList",
        Q,
        OP,
    ),
    Route(
        "token_create_deprecated",
        "POST /v1/token",
        "Create an API token (deprecated path)",
        "ApiTokenCreated",
        f"{Q} AccountNotFound InvalidAccountId",
        OP,
        body="ApiTokenCreate",
    ),
    Route(
        "token_delete_deprecated",
        "DELETE /v1/token/{token}",
        "Delete an API token given the token (deprecated)",
        "ApiTokenDeleted",
        Q,
        OP,
    ),
)
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
        f"{REFRESH} ApiEndpointDisabled ProviderTypeUnsupported ResourceNotAllowed",
        "oauth-tokens",
        query="minValidity resource scopes",
    ),
    Route(
        "account_create",
        "POST /v1/account",
        "Import an account, or start its consent (authorize: true)",
        "AccountCreated",
        "InvalidAccountId InvalidAppId AppNotFound RedirectUrlNotAllowed ProviderUnavailable "
        "AccountAppMismatch",
        body="AccountImport",
    ),
    Route(
        "authentication_form",
        "POST /v1/authentication/form",
        "A hosted consent link (signed, expiring, single-use)",
        "AuthenticationLink",
        "InvalidAccountId InvalidAppId AppNotFound RedirectUrlNotAllowed AccountAppMismatch",
        body="AuthenticationForm",
    ),
    Route(
        "oauth_start",
        "GET /oauth/start",
        "Open a link: a hosted link's page (200), or on to the provider (a direct link)",
        "Page",
        LINK_ERRORS,
        scope=None,
        status=302,
        query="link",
        html=True,
    ),
    Route(
        "oauth_start_post",
        "POST /oauth/start",
        "Press a hosted link's button: the link is used up, on to the provider",
        "",
        START_ERRORS,
        scope=None,
        status=303,
        html=True,
        form="StartForm",
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
        "oauth_callback_ee",
        "GET /oauth",
        "The provider's answer at EmailEngine's callback path (as /oauth/callback)",
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
        "List or search accounts",
        "AccountPage",
        "UnknownQueryParameter",
        query="page pageSize status state@accounts query",
    ),
    Route("account_get", f"GET {A}", "Show an account", "AccountView", "UnknownQueryParameter"),
    Route(
        "account_delete",
        f"DELETE {A}",
        "Delete an account (revoke: false unless asked)",
        "AccountDeleted",
        "UnknownQueryParameter",
        query="revoke",
    ),
    Route(
        "account_update",
        f"PUT {A}",
        "Change an account: name, email, its grant (partial: true merges)",
        "EeAccountUpdated",
        "UnknownQueryParameter InvalidAppId AppNotFound AccountAppMismatch",
        body="EeAccountUpdate",
    ),
    Route("account_refresh", f"POST {A}/refresh", "Refresh now", "AccountRefreshed", REFRESH),
    Route(
        "account_verify",
        f"POST {A}/verify",
        "Check the mailbox: log in over IMAP and SMTP, call the mail API",
        "AccountVerified",
        f"{REFRESH} AppNotFound UnknownQueryParameter",
    ),
    Route("apps_list", "GET /v1/oauth2", "List OAuth2 apps", "AppList", query="page pageSize"),
    Route(
        "app_create",
        "POST /v1/oauth2",
        "Create an app",
        "AppCreated",
        "InvalidAppId AppExists OperatorAuthorityRequired",
        body="AppCreate",
    ),
    Route("app_get", f"GET {P}", "Show an OAuth2 app", "App"),
    Route(
        "app_update",
        f"PUT {P}",
        "Change an OAuth2 app",
        "AppUpdated",
        "AppInUse OperatorAuthorityRequired",
        body="AppUpdate",
    ),
    Route("app_delete", f"DELETE {P}", "Delete an OAuth2 app and its accounts", "AppDeleted"),
    Route(
        "app_verify",
        f"POST {P}/verify",
        "Check an OAuth2 app's set-up step by step",
        "AppVerified",
        "AppNotFound",
        body="AppVerify",
    ),
    Route(
        "app_credentials_promote",
        f"POST {P}/credentials/promote",
        "Make the next client secret or certificate the current one",
        "CredentialsPromoted",
        "NoNextCredential",
    ),
    Route(
        "settings_get",
        f"GET {S}",
        "Read the settings (with query keys: those, in EmailEngine's form)",
        "SettingsRead",
        query=" ".join(f"{k}@settings" for k in EE_KEYS),
    ),
    Route(
        "settings_post",
        f"POST {S}",
        "Change settings in EmailEngine's form",
        "EeSettingsUpdated",
        "InvalidWebhookHeader",
        body="EeSettingsPost",
    ),
    Route(
        "settings_put",
        f"PUT {S}",
        "Change settings",
        "Settings",
        "SettingNotAllowed InvalidWebhookHeader",
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
    *EE_TOKEN_ROUTES,
    Route(
        "audit_list",
        "GET /v1/audit",
        "The audit trail: token answers and operator actions, newest first",
        "AuditPage",
        Q,
        "audit",
        query="account@audit token@audit action from to cursor limit",
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
PATH_PARAMS = ("account", "app", "token")


def _parameter(name: str) -> tuple[Schema, str]:
    """A path or query parameter by name, with the error codes a bad or unknown value gets."""
    schemas = {
        "account": (
            schema_type("string", pattern=ACCOUNT_PATTERN),
            "InvalidAccountId AccountNotFound",
        ),
        "app": (schema_type("string", pattern=APP_PATTERN), "InvalidAppId AppNotFound"),
        "minValidity": (
            schema_type("integer", **MIN_VALIDITY_S.schema()),
            "InvalidMinValidity",
        ),
        "resource": (
            resource_schema(
                NAMES,
                "outlook apps: a token for one resource, outlook, graph or an audience URI "
                "(https://… or api://…), from the account's one refresh token",
            ),
            "InvalidResource MixedResources",
        ),
        "scopes": (
            schema_type(
                "string",
                description="a token for these of the consented scopes (space or comma "
                "separated): outlook apps, of one resource; gmail and oidc apps, down-scoped",
            ),
            "ScopeNotConsented MixedResources InvalidResource",
        ),
        "page": (schema_type("integer", **PAGE.schema()), "InvalidInput"),
        "pageSize": (schema_type("integer", **PAGE_SIZE.schema()), "InvalidInput"),
        "status": (schema_type("string", enum=["all", *STATUSES], default="all"), "InvalidInput"),
        "link": (schema_type("string", description="the signed hosted link"), "InvalidLink"),
        **ee_parameters(),
        **audit_parameters(),
        **{
            name: (schema_type("string", description="set by the provider"), "")
            for name in ("state", "code", "error", "error_description", "iss")
        },
    }
    if name in WEBHOOK_PARAMETERS:
        schema, codes, where = WEBHOOK_PARAMETERS[name]
    else:
        schema, codes = schemas[name]
        where = "path" if name in PATH_PARAMS else "query"
    param = {"name": name.split("@")[0], "in": where, "required": where == "path"}
    return {**param, "schema": schema}, codes


def _response(status: int, schema: str, codes: list[str] | None = None) -> Schema:
    headers: Schema = {"X-Request-Id": ref("RequestId", "headers")}
    if codes or schema == "OAuthToken":  # errors and access tokens say Cache-Control: no-store
        headers["Cache-Control"] = ref("NoStore", "headers")
    if codes and "ProviderUnavailable" in codes:
        headers["Retry-After"] = ref("RetryAfter", "headers")
    response = {
        "description": HTTPStatus(status).phrase + (f": {', '.join(codes)}" if codes else ""),
        "headers": headers,
        "content": {CONTENT_TYPES.get(schema, "application/json"): {"schema": ref(schema)}},
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
        content = {"application/json": {"schema": ref(route.body)}}
        op["requestBody"] = {"required": True, "content": content}
    if route.form:
        content = {"application/x-www-form-urlencoded": {"schema": ref(route.form)}}
        op["requestBody"] = {"required": True, "content": content}
    by_status: dict[int, list[str]] = {}
    for code in dict.fromkeys(" ".join(codes).split()):
        by_status.setdefault(STATUS_OF[code], []).append(code)
    if route.html:
        headers = {"X-Request-Id": ref("RequestId", "headers")}
        headers["Cache-Control"] = ref("NoStore", "headers")
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
    parts = components()
    parts["schemas"].update(audit_schemas())
    return {
        "openapi": "3.1.0",
        "info": {"title": "tokenbroker", "version": _version(), "description": description},
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "webhooks": webhook_events(),
        "components": parts,
    }
