"""A Google service account's key (PEM or the JSON key file) and the JWT bearer assertions it signs.

RFC 7523 §2.1: the assertion is a JWT signed with the account's private key, `iss` the
service account's email, `sub` the mailbox it acts for (domain-wide delegation), `aud` the
token URL, `scope` the app's scopes, valid at most an hour. The key never leaves this
module in any form but a signature; no error text carries any of it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from jose import jwk, jws
from jose.backends.base import Key
from jose.exceptions import JOSEError

from service import errors

ASSERTION_LIFETIME_S = 3600  # Google accepts at most an hour between iat and exp
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
INVALID = "serviceKey must be an RSA private key in PEM or the JSON key file Google hands out"


@dataclass(frozen=True)
class ServiceKey:
    """A parsed service account key (loaded once: loading costs far more than signing)."""

    signer: Key = field(repr=False)
    key_id: str | None = None
    client_email: str | None = None
    client_id: str | None = None


def parse_service_key(text: str) -> ServiceKey:
    """Read a PEM private key or Google's JSON key file; InvalidInput (no key text) otherwise."""
    text = text.strip()
    if text.startswith("{"):
        return _from_json(text)
    return ServiceKey(signer=_private(text))


def _from_json(text: str) -> ServiceKey:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise errors.InvalidInput(INVALID, details={"field": "serviceKey"}) from None
    pem = data.get("private_key") if isinstance(data, dict) else None
    if not isinstance(pem, str):
        raise errors.InvalidInput(INVALID, details={"field": "serviceKey"})
    return ServiceKey(
        signer=_private(pem.strip()),
        key_id=_text(data.get("private_key_id")),
        client_email=_text(data.get("client_email")),
        client_id=_text(data.get("client_id")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _private(pem: str) -> Key:
    try:
        key = jwk.construct(pem, "RS256")
    except (JOSEError, ValueError, TypeError):
        raise errors.InvalidInput(INVALID, details={"field": "serviceKey"}) from None
    if key.is_public():
        raise errors.InvalidInput(
            "serviceKey is a public key; the private key is needed", details={"field": "serviceKey"}
        )
    return key


def assertion(
    key: ServiceKey, *, issuer: str, subject: str, scopes: list[str], audience: str, now_s: int
) -> str:
    """A signed JWT bearer assertion for `subject` (RS256, the key id in the header)."""
    claims = {
        "iss": issuer,
        "sub": subject,
        "scope": " ".join(scopes),
        "aud": audience,
        "iat": now_s,
        "exp": now_s + ASSERTION_LIFETIME_S,
    }
    headers = {"kid": key.key_id} if key.key_id else None
    return str(jws.sign(claims, key.signer, headers=headers, algorithm="RS256"))
