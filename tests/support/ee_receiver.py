"""A webhook receiver's check as EmailEngine's receivers do it, and the recorded deliveries.

Written from the recorded requests (tests/fixtures/emailengine/webhooks-A.jsonl), not from
our code: X-EE-Wh-Signature is base64url without padding of HMAC-SHA256 keyed with the
serviceSecret over the raw body bytes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emailengine"


def ee_verify(service_secret: str, body: bytes, headers: dict[str, str]) -> bool:
    """Whether the delivery's X-EE-Wh-Signature header is right for this body and secret."""
    given = next((v for k, v in headers.items() if k.lower() == "x-ee-wh-signature"), "")
    mac = hmac.new(service_secret.encode(), body, hashlib.sha256).digest()
    expected = base64.urlsafe_b64encode(mac).decode().rstrip("=")
    return hmac.compare_digest(expected, given)


def recorded() -> list[dict[str, Any]]:
    """Every webhook request the recorded EmailEngine made, in order."""
    text = (FIXTURES / "webhooks-A.jsonl").read_text()
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def recorded_secret() -> str:
    """The serviceSecret the recorded EmailEngine signed with (from the manifest)."""
    return str(orjson.loads((FIXTURES / "manifest-A.json").read_bytes())["serviceSecret"])


def shape(value: Any) -> Any:
    """Keys and JSON types of a value, values left out (objects keep their key order)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [shape(item) for item in value]
    return type(value).__name__


def recorded_shapes(event: str) -> list[Any]:
    """The distinct body shapes of one recorded event."""
    found: list[Any] = []
    for entry in recorded():
        if entry["json"]["event"] == event and shape(entry["json"]) not in found:
            found.append(shape(entry["json"]))
    return found
