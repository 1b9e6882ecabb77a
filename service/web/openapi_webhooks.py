"""OpenAPI pieces of the webhook routes: secret rotation, deliveries, redelivery, test event."""

from __future__ import annotations

from typing import Any

from service.limits import DELIVERIES, MSG_ID_MAX
from service.webhooks.deliveries import STATUSES

Schema = dict[str, Any]
MSG_ID_PATTERN = f"^msg_[A-Za-z0-9_-]{{1,{MSG_ID_MAX - len('msg_')}}}$"


def _attempt() -> Schema:
    return {
        "type": "object",
        "properties": {
            "date": {"type": "string"},
            "status": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "durationMs": {"type": "integer"},
        },
        "required": ["date", "status", "error", "durationMs"],
    }


def webhook_parameters() -> dict[str, tuple[Schema, str, str]]:
    """Parameter key -> (schema, error codes, 'path' or 'query')."""
    return {
        "id": ({"type": "string", "pattern": MSG_ID_PATTERN}, "DeliveryNotFound", "path"),
        "status@deliveries": (
            {"type": "string", "enum": list(STATUSES), "default": "failed"},
            "InvalidInput",
            "query",
        ),
        "limit": (
            {"type": "integer", **DELIVERIES.schema()},
            "InvalidInput",
            "query",
        ),
    }


def webhook_schemas() -> Schema:
    """The component schemas of the webhook routes."""
    nullable = {"type": ["string", "null"]}
    delivery = {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "event": nullable,
            "account": nullable,
            "app": nullable,
            "date": nullable,
            "status": {"type": "string", "enum": list(STATUSES)},
            "attempts": {"type": "array", "items": _attempt()},
        },
        "required": ["id", "status", "attempts"],
    }
    return {
        "WebhookSecret": {
            "type": "object",
            "required": ["secret"],
            "properties": {
                "secret": {
                    "type": "string",
                    "pattern": "^whsec_",
                    "description": "shown only in this answer",
                }
            },
        },
        "Deliveries": {
            "type": "object",
            "required": ["status", "deliveries"],
            "properties": {
                "status": {"type": "string", "enum": list(STATUSES)},
                "deliveries": {"type": "array", "items": delivery},
            },
        },
        "Redelivered": {
            "type": "object",
            "required": ["id", "queued"],
            "properties": {"id": {"type": "string"}, "queued": {"const": True}},
        },
        "WebhookTest": {
            "type": "object",
            "required": ["id", "delivered", *_attempt()["required"]],
            "properties": {
                "id": {"type": "string"},
                "delivered": {"type": "boolean"},
                **_attempt()["properties"],
            },
        },
    }


EVENT_EXAMPLES: dict[str, Schema] = {
    "accountAdded": {"user": "user@example.com", "provider": "gmail"},
    "accountDeleted": {"user": "user@example.com", "provider": "gmail"},
    "authenticationError": {
        "user": "user@example.com",
        "provider": "gmail",
        "status": 400,
        "reason": "revoked",
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    },
    "authenticationSuccess": {"user": "user@example.com", "provider": "gmail"},
    "scopesMissing": {
        "user": "user@example.com",
        "provider": "gmail",
        "missingScopes": ["https://www.googleapis.com/auth/postmaster.readonly"],
    },
    "appCredentialsError": {
        "provider": "outlook",
        "clientId": "00000000-0000-0000-0000-000000000000",
        "error": "invalid_client",
        "error_description": "AADSTS7000222: secret expired",
        "reason": "appCredentials",
    },
    "appCredentialsExpiring": {
        "provider": "outlook",
        "clientId": "00000000-0000-0000-0000-000000000000",
        "credential": "current",
        "type": "secret",
        "expires": "2026-12-20T00:00:00.000Z",
        "daysLeft": 14,
        "next": False,
    },
    "authenticationExpiring": {
        "user": "user@example.com",
        "provider": "gmail",
        "deadline": "2026-12-08T09:30:00.000Z",
        "hoursLeft": 47,
        "stage": "warning",
        "source": "publishingStatus:testing",
        "url": "https://tokenbroker.example.com/oauth/start?link=eyJhbGciOi...",
        "urlExpires": "2026-12-08T09:30:00.000Z",
    },
}


def webhook_events() -> Schema:
    """The OpenAPI 3.1 `webhooks` section: one signed POST per event, with an example each."""
    headers = {
        name: {"required": True, "schema": {"type": "string"}, "description": text}
        for name, text in (
            ("webhook-id", "the event id (msg_…), the same on every retry and redelivery"),
            ("webhook-timestamp", "seconds since the epoch when this attempt was signed"),
            (
                "webhook-signature",
                "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>, "
                "space-separated during a secret rotation",
            ),
        )
    }
    found: Schema = {}
    for event, data in EVENT_EXAMPLES.items():
        example = {
            "id": "msg_2b7Zq4y9KcR1",
            "event": event,
            "date": "2026-11-29T18:25:27.780Z",
            "account": None if event.startswith("appCredentials") else "example",
            "app": "gmail",
            "data": data,
        }
        body = {"schema": {"$ref": "#/components/schemas/WebhookEvent"}, "example": example}
        found[event] = {
            "post": {
                "operationId": f"webhook_{event}",
                "summary": f"{event} (Standard Webhooks signed)",
                "parameters": [{"name": n, "in": "header", **h} for n, h in headers.items()],
                "requestBody": {"required": True, "content": {"application/json": body}},
                "responses": {"2XX": {"description": "delivered; anything else is retried"}},
            }
        }
    return found


def webhook_event_schema() -> Schema:
    """The body every event shares."""
    nullable = {"type": ["string", "null"]}
    return {
        "type": "object",
        "required": ["id", "event", "date", "account", "app", "data"],
        "properties": {
            "id": {"type": "string", "pattern": "^msg_"},
            "event": {"type": "string", "enum": list(EVENT_EXAMPLES)},
            "date": {"type": "string"},
            "account": nullable,
            "app": nullable,
            "data": {"type": "object"},
        },
    }
