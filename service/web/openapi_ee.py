"""OpenAPI parts of the EmailEngine-compatible API: its account keys, parameters and routes."""

from __future__ import annotations

from typing import Any

from service.apitokens import SCOPES
from service.limits import DESCRIPTION_MAX
from service.resources import AUDIENCE_PATTERN, DEFAULT, NAMES
from service.validate import ACCOUNT_ID
from service.web.ee_accounts import EE_STATES, EMAIL_PATTERN
from service.web.ee_settings import EE_KEYS

Schema = dict[str, Any]
ACCOUNT_PATTERN = f"^{ACCOUNT_ID.pattern}$"
TOKEN_PATTERN = "^[0-9a-f]{1,64}$"  # noqa: S105 - a token id, or a token (service/web/ee_tokens.py)


def _t(*types: str, **keywords: Any) -> Schema:
    return {"type": types[0] if len(types) == 1 else list(types), **keywords}


def ee_account_props() -> Schema:
    """EmailEngine's keys of an account in a listing (beside ours)."""
    return {
        "email": _t("string", description="the import's email, else the user"),
        "type": _t("string", description="the app's provider type"),
        "state": _t("string", enum=list(EE_STATES), description="EmailEngine's account state"),
        "counters": _t("object"),
    }


def ee_account_view(account: Schema) -> Schema:
    """GET /v1/account/{id}: the listing's keys plus EmailEngine's detail keys."""
    auth = _t(
        "object",
        properties={"user": _t("string"), "delegatedUser": _t("string")},
        required=["user"],
    )
    oauth2 = _t(
        "object",
        properties={
            "provider": _t("string", description="the app id"),
            "auth": auth,
            "refreshToken": _t("string", const="******"),
            "accessToken": _t("string", const="******"),
            "expires": _t("string", format="date-time"),
        },
        required=["provider", "auth"],
    )
    extra = {
        "logs": _t("boolean", const=False),
        "notifyFrom": _t("string", "null", format="date-time"),
        "connections": _t("integer", const=0),
        "syncFrom": _t("null"),
        "path": _t("string"),
        "imapIndexer": _t("string"),
        "smtpStatus": _t("null"),
        "imap": _t("boolean", const=False),
        "smtp": _t("boolean", const=False),
        "baseScopes": _t("string", "null", description="the app's scope preset"),
        "oauth2": oauth2,
    }
    props = {**account["properties"], **extra}
    return {**account, "properties": props, "required": list(props)}


def ee_page_props() -> Schema:
    """EmailEngine's keys of an account page: the query (false when none) and state."""
    return {
        "query": _t("string", "boolean", description="the prefix searched; false when none"),
        "state": _t("string", enum=["*", *EE_STATES]),
    }


def ee_import_props(user_max: int) -> Schema:
    """EmailEngine's import fields tokenbroker takes: email, and imap/smtp only as false."""
    return {
        "email": _t("string", "null", pattern=EMAIL_PATTERN, maxLength=user_max),
        "imap": _t("boolean", const=False),
        "smtp": _t("boolean", const=False),
    }


def ee_parameters() -> dict[str, tuple[Schema, str]]:
    """The query parameters of the EmailEngine routes, with their error codes."""
    return {
        "state@accounts": (_t("string", enum=["*", *EE_STATES], default="*"), "InvalidInput"),
        "query": (
            _t("string", description="prefix of an account id or user, ASCII case-insensitive"),
            "",
        ),
        **{
            f"{key}@settings": (
                _t("string", enum=["true", "false"], description="ask for this setting"),
                "InvalidInput",
            )
            for key in EE_KEYS
        },
        "account@tokens": (_t("string", pattern=ACCOUNT_PATTERN), "InvalidAccountId"),
        "token": (
            _t("string", pattern=TOKEN_PATTERN, description="a token id (by value on /v1/token)"),
            "InvalidInput TokenNotFound",
        ),
        "revoke": (
            _t("string", enum=["true", "false", "1", "0", "y", "n", "yes", "no"], default="false"),
            "InvalidInput",
        ),
    }


def ee_schemas() -> Schema:
    """The component schemas of EmailEngine's settings forms."""
    headers = _t(
        "array",
        items=_t(
            "object",
            properties={"key": _t("string"), "value": _t("string")},
            required=["key", "value"],
        ),
    )
    post = _t(
        "object",
        properties={
            "webhooks": _t("string", "null"),
            "webhooksEnabled": _t("boolean"),
            "webhookEvents": _t("array", items=_t("string")),
            "webhooksCustomHeaders": headers,
            "serviceUrl": _t("string", description="must equal TOKENBROKER_BASE_URL"),
            "notifyHeaders": _t("array", maxItems=0),
        },
        additionalProperties=False,
    )
    view = _t("object", description="the asked keys, in EmailEngine's value forms")
    updated = _t(
        "object",
        properties={"updated": _t("array", items=_t("string"))},
        required=["updated"],
    )
    either = {"anyOf": [{"$ref": f"#/components/schemas/{n}"} for n in ("Settings", "EeSettings")]}
    update = _t(
        "object",
        properties={
            "name": _t("string", minLength=1, maxLength=256),
            "email": _t("string", pattern=EMAIL_PATTERN, maxLength=320),
            "oauth2": _t("object", description="as on import; partial: true merges"),
            "imap": _t("boolean", const=False),
            "smtp": _t("boolean", const=False),
        },
        additionalProperties=False,
    )
    return {
        "EeAccountUpdate": update,
        "EeAccountUpdated": _t(
            "object", properties={"account": _t("string")}, required=["account"]
        ),
        **_token_schemas(),
        "EeSettingsPost": post,
        "EeSettings": view,
        "SettingsRead": either,
        "EeSettingsUpdated": updated,
    }


def resource_schema(names: tuple[str, ...], description: str | None = None) -> Schema:
    """A token endpoint resource: one of `names` or an audience URI (service/resources.py)."""
    uri = _t("string", pattern=f"^{AUDIENCE_PATTERN}$", maxLength=300)
    schema: Schema = {"anyOf": [_t("string", enum=list(names)), uri]}
    return {**schema, "description": description} if description else schema


def _token_schemas() -> Schema:
    resources = _t(
        "array",
        minItems=1,
        items=resource_schema((DEFAULT, *NAMES)),
        description="token endpoint resources it may ask for: default (no resource or "
        "scopes parameter, or scopes of a provider without resources), outlook, graph or an "
        "audience URI; absent: any",
    )
    token = _t(
        "object",
        properties={
            "id": _t("string"),
            "account": _t("string", "null"),
            "description": _t("string", "null"),
            "scopes": _t("array", items=_t("string")),
            "created": _t("string", format="date-time"),
            "expires": _t("string", "null"),
            "lastUsed": _t("string", "null"),
            "access": _t("object", properties={"time": _t("string", "null"), "ip": _t("null")}),
            "resources": resources,
        },
        required=["id", "account", "scopes", "created", "access"],
    )
    listing = _t(
        "object",
        properties={
            "account": _t("string", "null"),
            **{k: _t("integer", minimum=0) for k in ("total", "pages", "page")},
            "tokens": _t("array", items=token),
        },
        required=["account", "total", "pages", "page", "tokens"],
    )
    create = _t(
        "object",
        properties={
            "account": _t("string", "null", pattern=ACCOUNT_PATTERN),
            "description": _t("string", "null", minLength=1, maxLength=DESCRIPTION_MAX),
            "scopes": _t("array", minItems=1, items=_t("string", enum=list(SCOPES))),
            "resources": resources,
        },
        required=["scopes"],
        additionalProperties=False,
    )
    created = _t(
        "object",
        properties={"token": _t("string"), "id": _t("string")},
        required=["token", "id"],
    )
    deleted = _t("object", properties={"deleted": _t("boolean")}, required=["deleted"])
    account_list = _t(
        "object", properties={"tokens": _t("array", items=token)}, required=["tokens"]
    )
    return {
        "ApiTokenInfo": token,
        "ApiTokenPage": listing,
        "ApiTokenCreate": create,
        "ApiTokenCreated": created,
        "ApiTokenDeleted": deleted,
        "ApiTokenList": account_list,
    }
