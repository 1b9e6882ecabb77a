"""Custom webhook headers: checked on save so that every stored header can be sent."""

from __future__ import annotations

import re
from typing import Any

from service import errors
from service.validate import HEADER_NAME

FIELD = "webhookHeaders"
MAX_VALUE = 4096
# Headers that frame or route the request, or that the signature stands for: never custom.
RESERVED = frozenset(
    {
        "connection",
        "content-encoding",
        "content-length",
        "content-type",
        "expect",
        "host",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
RESERVED_PREFIX = "webhook-"  # Standard Webhooks' own headers
CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_headers(value: Any) -> dict[str, str]:
    """Return `value` if it maps header names to values we may send; raise otherwise.

    A wrong shape is InvalidInput; a name or value that must not be sent is
    InvalidWebhookHeader, naming the header and the reason (never echoing the value).
    """
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise errors.InvalidInput(f"{FIELD} must map names to strings", details={"field": FIELD})
    seen: set[str] = set()
    for name, text in value.items():
        reason = _name_problem(name, seen) or _value_problem(text)
        if reason is not None:
            raise errors.InvalidWebhookHeader(
                f"webhook header {name[:128]!r}: {reason[1]}",
                details={"field": FIELD, "header": name[:128], "reason": reason[0]},
            )
        seen.add(name.lower())
    return value


def _name_problem(name: str, seen: set[str]) -> tuple[str, str] | None:
    lower = name.lower()
    if not HEADER_NAME.fullmatch(name):
        return "invalidName", "a header name is 1 to 128 token characters"
    if lower in RESERVED or lower.startswith(RESERVED_PREFIX):
        return "reserved", "this header is set by the service and cannot be replaced"
    if lower in seen:
        return "duplicate", "the header is given twice (names are case-insensitive)"
    return None


def _value_problem(text: str) -> tuple[str, str] | None:
    if CONTROL.search(text):
        return "controlCharacter", "the value contains a control character"
    if len(text) > MAX_VALUE:
        return "tooLong", f"the value is longer than {MAX_VALUE} characters"
    return None


def name_pattern() -> str:
    """A JSON Schema pattern for allowed names: HTTP tokens, reserved ones left out."""
    exact = "|".join(_any_case(word) for word in sorted(RESERVED))
    return f"^(?!(?:{exact})$)(?!{_any_case(RESERVED_PREFIX)}){HEADER_NAME.pattern}$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # JSON Schema: no control characters
