"""OpenAPI pieces of the consent routes: hosted-link bodies, consent answers, pages, redirects."""

from __future__ import annotations

from typing import Any

from service.limits import LINK_TTL_S, NAME_MAX, SCOPES_MAX, URL_MAX, USER_MAX

Schema = dict[str, Any]
PAGE_TYPE = "text/html"
MAILBOX_NOTE = "EmailEngine's mailbox setting: checked, without effect (no mailbox is opened)"


def _string(*, nullable: bool = False, **keywords: Any) -> Schema:
    return {"type": ["string", "null"] if nullable else "string", **keywords}


def consent_schemas(url_pattern: str, account_pattern: str, app_pattern: str) -> Schema:
    """The component schemas the consent routes use."""
    url = _string(minLength=1, maxLength=URL_MAX, pattern=url_pattern)
    form = {
        "type": "object",
        "properties": {
            "account": _string(
                nullable=True, pattern=account_pattern, description="generated when absent"
            ),
            "app": _string(
                nullable=True,
                pattern=app_pattern,
                description="the OAuth2 app id; default: the account's app, or the only app",
            ),
            "name": _string(nullable=True, minLength=1, maxLength=NAME_MAX),
            "redirectUrl": {
                **url,
                "description": "where the user lands afterwards: on TOKENBROKER_BASE_URL or "
                "under an allowedRedirectUrls prefix, else 400 RedirectUrlNotAllowed",
            },
            "expectedUser": _string(nullable=True, minLength=1, maxLength=USER_MAX),
            "expectedEmail": _string(
                nullable=True,
                minLength=1,
                maxLength=USER_MAX,
                description="EmailEngine's name of expectedUser",
            ),
            "type": _string(
                nullable=True,
                pattern=app_pattern,
                description="EmailEngine's name of app (`imap` is refused: OAuth2 accounts only)",
            ),
            "email": _string(
                nullable=True,
                minLength=1,
                maxLength=USER_MAX,
                pattern=r"^[^@\s]+@[^@\s]+$",
                description="the mailbox address kept on the account",
            ),
            "delegated": {
                "anyOf": [
                    {"type": ["boolean", "null"]},
                    {"enum": ["Y", "true", "1", "N", "false", "0", "", 0, 1]},
                ],
                "description": "a shared mailbox (Microsoft): `email` is its address, asked for "
                "on the link's page when absent",
            },
            **{
                key: _string(nullable=True, format="date-time", description=MAILBOX_NOTE)
                for key in ("syncFrom", "notifyFrom")
            },
            **{
                key: {
                    "anyOf": [
                        _string(nullable=True, minLength=1, maxLength=NAME_MAX),
                        {
                            "type": "array",
                            "maxItems": SCOPES_MAX,
                            "items": _string(minLength=1, maxLength=NAME_MAX),
                        },
                    ],
                    "description": MAILBOX_NOTE,
                }
                for key in ("path", "subconnections")
            },
            "ttl": {
                "type": ["integer", "null"],
                "minimum": LINK_TTL_S.low,
                "maximum": LINK_TTL_S.high,
                "description": "seconds the link stays valid (default one day)",
            },
        },
        "required": ["redirectUrl"],
        "additionalProperties": False,
    }
    redirect = {
        "type": "object",
        "properties": {
            "redirect": _string(
                description="our /oauth/start URL (valid 10 min, once): it binds the browser "
                "that opens it and redirects that browser to the provider's consent screen"
            )
        },
        "required": ["redirect"],
    }
    start = {
        "type": "object",
        "properties": {
            "link": _string(description="the hosted link's signed token"),
            "token": _string(description="the form token of the link's page, for this browser"),
            "app": _string(description="the app the user chose (a link made without one)"),
            "email": _string(description="the shared mailbox's address (a delegated link)"),
        },
        "required": ["link", "token"],
        "additionalProperties": False,
    }
    link = {"type": "object", "properties": {"url": _string()}, "required": ["url"]}
    return {
        "AuthenticationForm": form,
        "AuthenticationLink": link,
        "AuthorizeRedirect": redirect,
        "StartForm": start,
        "AccountCreated": {
            "anyOf": [
                {"$ref": "#/components/schemas/AccountImported"},
                {"$ref": "#/components/schemas/AuthorizeRedirect"},
            ]
        },
        "Page": _string(description="a small HTML page for the user"),
    }


def redirect_response(status: int, headers: Schema) -> Schema:
    """A redirect answer: Location, no body."""
    location = {"required": True, "schema": _string(), "description": "where the user goes"}
    return {
        "description": "The user is sent on",
        "headers": {**headers, "Location": location},
    }


def authorize_fields(url_pattern: str) -> tuple[Schema, list[Schema]]:
    """The authorize properties of POST /v1/account's oauth2 object, and the rules they add.

    A consent request (authorize: true) carries no tokens; an import needs them (an account of
    a service-account app has none: its app mints them) and takes no redirectUrl (the handler
    refuses a field it does not take, even when it is null).
    """
    props = {
        "authorize": {
            "type": ["boolean", "null"],
            "description": "true: answer a URL that starts the consent instead of importing",
        },
        "redirectUrl": {
            **_string(nullable=True, minLength=1, maxLength=URL_MAX, pattern=url_pattern),
            "description": "with authorize: where the user lands afterwards",
        },
    }
    tokens = ("auth", "refreshToken", "accessToken", "expires", "scopes")
    consent = {
        "required": ["authorize"],
        "properties": {"authorize": {"const": True}},
        "not": {"anyOf": [{"required": [name]} for name in tokens]},
    }
    imported = {
        "required": ["auth", "refreshToken"],
        "properties": {"authorize": {"enum": [False, None]}},
        "not": {"required": ["redirectUrl"]},
    }
    service = {  # an account of a gmailService or outlookService app: the mailbox, no tokens
        "required": ["auth"],
        "properties": {"authorize": {"enum": [False, None]}},
        "not": {"anyOf": [{"required": ["refreshToken"]}, {"required": ["redirectUrl"]}]},
    }
    return props, [{"anyOf": [consent, imported, service]}]


def account_rule() -> Schema:
    """POST /v1/account: an import names its account; a consent may leave it to be generated."""
    authorize: Schema = {"required": ["authorize"], "properties": {"authorize": {"const": True}}}
    consent = {"properties": {"oauth2": authorize}}
    imported = {"required": ["account"], "properties": {"account": {"type": "string"}}}
    return {"anyOf": [consent, imported]}
