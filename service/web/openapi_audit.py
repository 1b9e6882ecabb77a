"""The OpenAPI parts of GET /v1/audit: its query parameters and its answer's schema."""

from __future__ import annotations

from typing import Any

from service.audit_query import CURSOR
from service.limits import AUDIT_LIMIT
from service.web.audit_actions import ACTION_NAMES
from service.web.openapi_schemas import ACCOUNT_PATTERN, schema_type

Schema = dict[str, Any]
TIME = "ISO 8601 with a zone"


def audit_parameters() -> dict[str, tuple[Schema, str]]:
    """The query parameters of GET /v1/audit, with the error codes a bad value gets."""
    return {
        "account@audit": (
            schema_type("string", pattern=ACCOUNT_PATTERN, description="only this account's"),
            "InvalidAccountId",
        ),
        "token@audit": (
            schema_type("string", description="only those of this API token id"),
            "",
        ),
        "action": (schema_type("string", enum=list(ACTION_NAMES)), "InvalidInput"),
        "from": (
            schema_type("string", format="date-time", description=f"oldest time, {TIME}"),
            "InvalidInput",
        ),
        "to": (
            schema_type("string", format="date-time", description=f"newest time, {TIME}"),
            "InvalidInput",
        ),
        "cursor": (
            schema_type(
                "string",
                pattern=f"^{CURSOR.pattern}$",
                description="`next` of the previous page: its older records",
            ),
            "InvalidCursor",
        ),
        "limit": (schema_type("integer", **AUDIT_LIMIT.schema()), "InvalidInput"),
    }


def audit_schemas() -> Schema:
    """The component schema of an audit page."""
    text = schema_type("string")
    record = schema_type(
        "object",
        properties={
            "id": schema_type("string", description="the record's position; a cursor"),
            "time": schema_type("string", format="date-time"),
            "action": schema_type("string", enum=list(ACTION_NAMES)),
            "account": text,
            "app": text,
            "target": schema_type("string", description="the API token or delivery acted on"),
            "actor": schema_type("string", description="apitoken:<id> or admin:<user>"),
            "via": schema_type("string", enum=["api", "admin"]),
            "apiToken": schema_type("string", description="the caller's API token id"),
            "apiTokenDescription": text,
            "client": schema_type("string", description="the client's address"),
            "requestId": text,
            "source": schema_type("string", enum=["cache", "refresh", "refresh_failed"]),
            "resource": text,
            "status": schema_type("integer", description="the HTTP status of an action"),
        },
        required=["id", "time", "action"],
    )
    page = schema_type(
        "object",
        properties={
            "records": schema_type("array", items=record),
            "next": schema_type("string", "null", description="cursor of the next page"),
        },
        required=["records", "next"],
    )
    return {"AuditPage": page}
