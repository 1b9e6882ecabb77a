"""Webhook signatures, checked against an independent reading of the Standard Webhooks spec."""

from __future__ import annotations

import base64
import hashlib
import hmac

from service.webhooks.signing import new_secret, sign, signature_header


def verify(secret: str, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """A receiver's check written from the spec: any v1 signature in the header may match."""
    key = base64.b64decode(secret.split("_", 1)[1])
    expected = base64.b64encode(
        hmac.new(
            key, b".".join([msg_id.encode(), timestamp.encode(), body]), hashlib.sha256
        ).digest()
    ).decode()
    return any(
        part.split(",", 1)[0] == "v1" and hmac.compare_digest(part.split(",", 1)[1], expected)
        for part in header.split(" ")
    )


def test_signature_verifies_and_detects_changes() -> None:
    """A signature verifies; changing body, id or timestamp breaks it."""
    secret, body = new_secret(), b'{"event":"accountAdded"}'
    header = sign(secret, "msg_1", 1700000000, body)
    assert verify(secret, "msg_1", "1700000000", body, header)
    assert not verify(secret, "msg_1", "1700000000", body + b" ", header)
    assert not verify(secret, "msg_2", "1700000000", body, header)
    assert not verify(secret, "msg_1", "1700000001", body, header)
    assert not verify(new_secret(), "msg_1", "1700000000", body, header)


def test_rotation_sends_both_signatures() -> None:
    """During a rotation the header carries both signatures; either secret verifies."""
    old, new, body = new_secret(), new_secret(), b"{}"
    header = signature_header([new, old], "msg_x", 1, body)
    assert len(header.split(" ")) == 2
    assert verify(old, "msg_x", "1", body, header)
    assert verify(new, "msg_x", "1", body, header)


def test_secret_format() -> None:
    """Secrets are whsec_ plus base64 of 24 random bytes, different every time."""
    secret = new_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 24
    assert secret != new_secret()
