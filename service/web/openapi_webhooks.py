"""OpenAPI pieces of the webhook routes: secret rotation, deliveries, redelivery, test event."""

from __future__ import annotations

from typing import Any

from service.deliveries import STATUSES

Schema = dict[str, Any]
MSG_ID_PATTERN = "^msg_[A-Za-z0-9_-]{1,60}$"


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
            {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
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
