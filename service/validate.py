"""Small validators for request input, raising errors with stable codes."""

from __future__ import annotations

import re
from typing import Any

from service import errors
from service.clock import parse_iso_ms
from service.limits import (
    ACCOUNT_ID_MAX,
    APP_ID_MAX,
    HEADER_NAME_MAX,
    SCOPE_MAX,
    SCOPES_MAX,
    STRING_MAX,
    Range,
)

ACCOUNT_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._@+\-]{{0,{ACCOUNT_ID_MAX - 1}}}")
APP_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._\-]{{0,{APP_ID_MAX - 1}}}")
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
HEADER_NAME = re.compile(rf"[!#$%&'*+\-.^_`|~0-9A-Za-z]{{1,{HEADER_NAME_MAX}}}")
SCOPE = re.compile(rf"[\x21\x23-\x5b\x5d-\x7e]{{1,{SCOPE_MAX}}}")


def account_id(value: object) -> str:
    """Return a valid account id or raise InvalidAccountId."""
    if not isinstance(value, str) or not ACCOUNT_ID.fullmatch(value):
        raise errors.InvalidAccountId(
            f"account id must be 1-{ACCOUNT_ID_MAX} characters of A-Z a-z 0-9 . _ @ + - "
            "starting with a letter or digit",
            details={"field": "account"},
        )
    return value


def app_id(value: object) -> str:
    """Return a valid OAuth2 app id or raise InvalidAppId."""
    if not isinstance(value, str) or not APP_ID.fullmatch(value):
        raise errors.InvalidAppId(
            f"app id must be 1-{APP_ID_MAX} characters of A-Z a-z 0-9 . _ - "
            "starting with a letter or digit"
        )
    return value


def obj(value: object, where: str = "body") -> dict[str, Any]:
    """Return a JSON object or raise InvalidInput."""
    if not isinstance(value, dict):
        details = {"field": where.rsplit(".", 1)[-1]} if where != "body" else None
        raise errors.InvalidInput(f"{where} must be a JSON object", details=details)
    return value


def no_unknown(data: dict[str, Any], allowed: set[str], where: str = "body") -> None:
    """Refuse fields that the endpoint does not know, naming them."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise errors.InvalidInput(
            f"unknown field(s) in {where}: {', '.join(unknown)}", details={"fields": unknown}
        )


def string(
    data: dict[str, Any], key: str, *, required: bool = False, max_len: int = STRING_MAX
) -> str | None:
    """Return data[key] as a non-empty string (or None when absent and optional)."""
    value = data.get(key)
    if value is None:
        if required:
            raise errors.InvalidInput(f"{key} is required", details={"field": key})
        return None
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise errors.InvalidInput(
            f"{key} must be a non-empty string of at most {max_len} characters",
            details={"field": key},
        )
    return value


def boolean(data: dict[str, Any], key: str) -> bool | None:
    """Return data[key] as a bool (None when absent)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise errors.InvalidInput(f"{key} must be true or false", details={"field": key})
    return value


def scopes(value: object, key: str) -> list[str]:
    """Return a deduplicated list of scope strings from a list or a space-separated string."""
    items: list[object]
    if isinstance(value, str):
        items = list(value.split())
    elif isinstance(value, list):
        items = list(value)
    else:
        raise errors.InvalidInput(f"{key} must be a list of scopes", details={"field": key})
    if len(items) > SCOPES_MAX:
        raise errors.InvalidInput(
            f"{key} holds more than {SCOPES_MAX} scopes", details={"field": key}
        )
    result: list[str] = []
    for item in items:
        if not isinstance(item, str) or not SCOPE.fullmatch(item):
            raise errors.InvalidInput(f"{key} holds an invalid scope", details={"field": key})
        if item not in result:
            result.append(item)
    return result


def iso_time(data: dict[str, Any], key: str) -> int | None:
    """Return data[key], an ISO 8601 time with zone, as epoch ms (None when absent)."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise errors.InvalidInput(f"{key} must be an ISO 8601 time", details={"field": key})
    try:
        stamp = parse_iso_ms(value)
        if stamp > MAX_TIME_MS:
            raise ValueError("out of range")
        return max(stamp, 0)  # any time before 1970 is simply in the past
    except (ValueError, OverflowError):
        raise errors.InvalidInput(
            f"{key} must be an ISO 8601 time with a zone, e.g. 2030-01-01T00:00:00Z",
            details={"field": key},
        ) from None


def integer(raw: str | None, key: str, bounds: Range) -> int:
    """Parse a query parameter as an integer within bounds (their default when absent)."""
    low, high = bounds.low, bounds.high
    if raw is None:
        return bounds.default
    try:
        value = int(raw)
    except ValueError:
        raise errors.InvalidInput(f"{key} must be an integer", details={"field": key}) from None
    if not low <= value <= high:
        raise errors.InvalidInput(f"{key} must be between {low} and {high}", details={"field": key})
    return value
