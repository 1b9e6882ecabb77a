"""Every JOSE call: our own signed states and links, id_token checks, client assertions."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from cryptography.hazmat.primitives import serialization
from jose import jwk, jwt
from jose.exceptions import JOSEError

from service.errors import Fault

# Our own tokens: HMAC with a key derived from TOKENBROKER_SECRET (never the AES key itself).
OWN_ALGORITHM = "HS256"
KEY_LABEL = b"tokenbroker/jws/v1"
# Provider id_tokens: asymmetric signatures only. HS* is never accepted: a provider's public
# key must not become an HMAC secret (the classic algorithm-confusion forgery).
PROVIDER_ALGORITHMS = {
    "RS256": "RSA",
    "RS384": "RSA",
    "RS512": "RSA",
    "ES256": "EC",
    "ES384": "EC",
    "ES512": "EC",
}
ASSERTION_ALGORITHM = "RS256"  # what Microsoft accepts with an x5t header
LEEWAY_S = 120  # clock skew tolerated on exp, iat and nbf of an id_token


class JoseFailure(Fault):
    """A token that must not be trusted; `reason` is a short stable word."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Signer:
    """Signs and verifies our own compact tokens (states, hosted links) with HS256."""

    def __init__(self, secret: bytes, old_secrets: tuple[bytes, ...] = ()) -> None:
        self._keys = [_derive(key) for key in (secret, *old_secrets)]

    def sign(self, claims: Mapping[str, Any]) -> str:
        """Return a compact JWS of `claims` signed with the current key."""
        return str(jwt.encode(dict(claims), self._keys[0], algorithm=OWN_ALGORITHM))

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a token we signed (current or old key); times are not checked."""
        options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False}
        for key in self._keys:
            try:
                claims = jwt.decode(token, key, algorithms=[OWN_ALGORITHM], options=options)
            except JOSEError:
                continue
            return dict(claims)
        raise JoseFailure("signature", "the token was not signed by this service")


def expired(claims: Mapping[str, Any], now_ms: int) -> bool:
    """True when the claims' `exp` (epoch seconds) has passed, or there is none."""
    exp = claims.get("exp")
    return not isinstance(exp, int | float) or exp * 1000 <= now_ms


def verify_id_token(
    token: str,
    jwks: Mapping[str, Any],
    *,
    client_id: str,
    issuers: list[str],
    nonce: str,
    access_token: str | None,
    now_ms: int,
) -> dict[str, Any]:
    """Return the claims of an id_token whose signature, iss, aud, azp, exp and nonce hold.

    `issuers` may hold Microsoft's `{tenantid}` template. Raises JoseFailure; its reason is
    `unknownKey` when no key of `jwks` matches (the caller may refetch the JWKS once).
    """
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.get_unverified_claims(token)
    except JOSEError:
        raise JoseFailure("malformed", "the id_token is not a compact JWS") from None
    algorithm = header.get("alg")
    if algorithm not in PROVIDER_ALGORITHMS:
        raise JoseFailure("algorithm", f"id_token algorithm {algorithm!r} is not accepted")
    key_data = _select_key(jwks, header.get("kid"), algorithm)
    if key_data is None:
        raise JoseFailure("unknownKey", "no key of the provider's JWKS matches the id_token")
    tenant = str(unverified.get("tid", ""))
    expected = [issuer.replace("{tenantid}", tenant) for issuer in issuers]
    options = {"verify_exp": False, "verify_iat": False, "verify_nbf": False, "leeway": 0}
    try:
        key = jwk.construct(dict(key_data), algorithm)
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=client_id,
            issuer=expected,
            access_token=access_token,
            options={**options, "require_aud": True, "require_iss": True},
        )
    except JOSEError as exc:
        raise JoseFailure(_reason(exc), f"the id_token was refused: {exc}") from None
    _check_claims(claims, client_id=client_id, nonce=nonce, now_ms=now_ms)
    return dict(claims)


def _check_claims(claims: Mapping[str, Any], *, client_id: str, nonce: str, now_ms: int) -> None:
    now_s = now_ms / 1000
    exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
    if not isinstance(exp, int | float) or exp + LEEWAY_S <= now_s:
        raise JoseFailure("expired", "the id_token has expired")
    if isinstance(iat, int | float) and iat - LEEWAY_S > now_s:
        raise JoseFailure("notYetValid", "the id_token was issued in the future")
    if isinstance(nbf, int | float) and nbf - LEEWAY_S > now_s:
        raise JoseFailure("notYetValid", "the id_token is not valid yet")
    audience = claims.get("aud")
    azp = claims.get("azp")
    if (isinstance(audience, list) and len(audience) > 1 and azp is None) or (
        azp is not None and azp != client_id
    ):
        raise JoseFailure("audience", "the id_token was issued to another party (azp)")
    got = claims.get("nonce")
    if not isinstance(got, str) or not hmac.compare_digest(got.encode(), nonce.encode()):
        raise JoseFailure("nonce", "the id_token's nonce is not the one this flow sent")


def _select_key(jwks: Mapping[str, Any], kid: object, algorithm: str) -> Mapping[str, Any] | None:
    """The one signing key of the JWKS for this kid and algorithm (None: none or ambiguous)."""
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    candidates = [
        key
        for key in keys
        if isinstance(key, dict)
        and key.get("kty") == PROVIDER_ALGORITHMS[algorithm]
        and key.get("alg", algorithm) == algorithm
        and key.get("use", "sig") == "sig"
        and (kid is None or key.get("kid") == kid)
    ]
    return candidates[0] if len(candidates) == 1 else None


def sign_client_assertion(
    claims: Mapping[str, Any], key_pem: str, headers: Mapping[str, str]
) -> str:
    """A client assertion (RFC 7523 private_key_jwt) signed RS256 with the app's key.

    The key was checked when stored (service.crypto.credentials.check_key_pair) and is sealed
    with AES-GCM since, so loading it skips cryptography's RSA validation: that costs ~200 ms
    of CPU per load, the signature itself ~2 ms.
    """
    private = serialization.load_pem_private_key(
        key_pem.encode(), password=None, unsafe_skip_rsa_key_validation=True
    )
    key = jwk.construct(private, ASSERTION_ALGORITHM)
    return str(jwt.encode(dict(claims), key, algorithm=ASSERTION_ALGORITHM, headers=headers))


def _reason(exc: JOSEError) -> str:
    text = str(exc).lower()
    if "audience" in text or '"aud"' in text:
        return "audience"
    if "issuer" in text or '"iss"' in text:
        return "issuer"
    if "at_hash" in text:
        return "atHash"
    return "signature"


def _derive(secret: bytes) -> bytes:
    return hmac.new(secret, KEY_LABEL, hashlib.sha256).digest()


def can_sign_rs256(pem: str) -> bool:
    """Whether `pem` is a private key that signs a JWT assertion (RS256), as Google's needs."""
    try:
        jwt.encode({"iss": "check", "aud": "check"}, pem, algorithm="RS256")
    except (JOSEError, ValueError, TypeError):
        return False
    return True
