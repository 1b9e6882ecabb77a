"""Event payloads appended to a partition's stream in the same step as their state change."""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from service.clock import iso

EVENTS = (
    "accountAdded",
    "accountDeleted",
    "authenticationError",
    "authenticationSuccess",
    "scopesMissing",
    "appCredentialsError",
    "appCredentialsExpiring",
    "authenticationExpiring",
)


def event_json(
    name: str, account: str | None, app: str | None, data: dict[str, Any], now_ms: int
) -> str:
    """Return the JSON body of one event: {id, event, date, account, app, data}."""
    assert name in EVENTS, name  # noqa: S101 - programming error, not input
    body = {
        "id": f"msg_{secrets.token_urlsafe(18)}",
        "event": name,
        "date": iso(now_ms),
        "account": account,
        "app": app,
        "data": data,
    }
    return orjson.dumps(body).decode()


Wanted = Callable[[str], Awaitable[bool]]


async def always(name: str) -> bool:
    """The default filter: every event is wanted."""
    return True


async def wanted_event(
    wants: Wanted,
    name: str,
    account: str | None,
    app: str | None,
    data: dict[str, Any],
    now_ms: int,
) -> str:
    """The event's JSON when webhooks want it, else '' (scripts append nothing for '')."""
    return event_json(name, account, app, data, now_ms) if await wants(name) else ""
