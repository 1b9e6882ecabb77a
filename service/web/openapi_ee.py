"""OpenAPI parts of the EmailEngine-compatible API: its account keys, parameters and routes."""

from __future__ import annotations

from typing import Any

from service.web.ee_accounts import EE_STATES

Schema = dict[str, Any]


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
        "email": _t("string", "null", minLength=1, maxLength=user_max),
        "imap": _t("boolean", const=False),
        "smtp": _t("boolean", const=False),
    }


def ee_parameters() -> dict[str, tuple[Schema, str]]:
    """The query parameters of the EmailEngine routes, with their error codes."""
    return {
        "state": (_t("string", enum=["*", *EE_STATES], default="*"), "InvalidInput"),
        "query": (
            _t("string", description="prefix of an account id or user, ASCII case-insensitive"),
            "",
        ),
        "revoke": (
            _t("string", enum=["true", "false", "1", "0", "y", "n", "yes", "no"], default="false"),
            "InvalidInput",
        ),
    }
