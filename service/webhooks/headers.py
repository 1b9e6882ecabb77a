"""Custom webhook headers: checked on save, values encrypted at rest and never shown again.

The settings field `webhookHeaders` holds the names with masked values (what the API and
the page show); `webhookHeaderValues` holds the whole mapping, encrypted. Both are written
in the settings' one MULTI/EXEC. A masked value given back on update keeps the stored one.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from redis.asyncio import Redis

from service import errors
from service.crypto.cipher import Cipher
from service.limits import HEADER_VALUE_MAX
from service.store.keys import Keys
from service.validate import HEADER_NAME

FIELD = "webhookHeaders"
SEALED = "webhookHeaderValues"
AAD = "settings:webhookHeaderValues"
MASK = "********"
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
RESERVED_PREFIXES = ("webhook-", "x-ee-wh-")  # Standard Webhooks' and EmailEngine's own
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
    if lower in RESERVED or lower.startswith(RESERVED_PREFIXES):
        return "reserved", "this header is set by the service and cannot be replaced"
    if lower in seen:
        return "duplicate", "the header is given twice (names are case-insensitive)"
    return None


def _value_problem(text: str) -> tuple[str, str] | None:
    if CONTROL.search(text):
        return "controlCharacter", "the value contains a control character"
    if len(text) > HEADER_VALUE_MAX:
        return "tooLong", f"the value is longer than {HEADER_VALUE_MAX} characters"
    return None


def name_pattern() -> str:
    """A JSON Schema pattern for allowed names: HTTP tokens, reserved ones left out."""
    exact = "|".join(_any_case(word) for word in sorted(RESERVED))
    prefixes = "|".join(_any_case(prefix) for prefix in RESERVED_PREFIXES)
    return f"^(?!(?:{exact})$)(?!{prefixes}){HEADER_NAME.pattern}$"


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in word)


VALUE_PATTERN = r"^[^\x00-\x1f\x7f]*$"  # JSON Schema: no control characters


def masked(headers: dict[str, str]) -> dict[str, str]:
    """The headers as shown: names, each with the mask for a value."""
    return {name: MASK for name in headers}


class WebhookHeaders:
    """Reads the custom headers to send, and seals new ones for the settings store."""

    def __init__(self, redis: Redis, keys: Keys, cipher: Cipher) -> None:
        self.redis, self.keys, self.cipher = redis, keys, cipher

    async def values(self) -> dict[str, str]:
        """The headers to send with every delivery, decrypted."""
        sealed, shown = await self.redis.hmget(self.keys.settings, [SEALED, FIELD])
        if sealed:
            found = orjson.loads(self.cipher.decrypt(str(sealed), AAD))
            return {str(k): str(v) for k, v in found.items()}
        legacy = orjson.loads(shown) if shown else {}  # stored in clear by older versions
        return {str(k): str(v) for k, v in legacy.items() if v != MASK}

    async def fields(self, wanted: dict[str, str]) -> dict[str, str]:
        """The settings fields that store `wanted`; a masked value keeps the stored one."""
        current = {name.lower(): value for name, value in (await self.values()).items()}
        plain: dict[str, str] = {}
        for name, value in wanted.items():
            if value == MASK:
                if name.lower() not in current:
                    raise errors.InvalidWebhookHeader(
                        f"webhook header {name!r} has no stored value to keep: give its value",
                        details={"field": FIELD, "header": name, "reason": "noStoredValue"},
                    )
                value = current[name.lower()]
            plain[name] = value
        return {
            FIELD: orjson.dumps(masked(plain)).decode(),
            SEALED: self.cipher.encrypt(orjson.dumps(plain).decode(), AAD),
        }
