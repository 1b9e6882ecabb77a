"""id_token checks: signature, iss, aud, exp, nonce, at_hash; no HS256 forged with a public key."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.request
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwk, jws, jwt
from redis.asyncio import Redis

from service import errors
from service.core import Core
from service.oauth.jose import JoseFailure, verify_id_token
from tests.support.consent import Client, authorize_as, follow, query_of, start_consent
from tests.support.idp import Idp

NOW_MS = 1_800_000_000_000
NOW_S = NOW_MS // 1000
CLIENT_ID = "client-1"
ISSUER = "https://idp.example.test"
NONCE = "nonce-123"


def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _public_jwk(private_pem: bytes, algorithm: str, kid: str) -> dict[str, Any]:
    public = jwk.construct(private_pem, algorithm).public_key().to_dict()
    return {**public, "kid": kid, "use": "sig"}


RSA_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
OTHER_RSA_PEM = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
EC_PEM = _pem(ec.generate_private_key(ec.SECP256R1()))
JWKS = {"keys": [_public_jwk(RSA_PEM, "RS256", "rsa-1"), _public_jwk(EC_PEM, "ES256", "ec-1")]}


def claims(**changes: Any) -> dict[str, Any]:
    """Valid id_token claims for CLIENT_ID from ISSUER, with `changes` (None removes one)."""
    base = {
        "iss": ISSUER,
        "aud": CLIENT_ID,
        "sub": "user-1",
        "email": "user@example.test",
        "iat": NOW_S - 10,
        "exp": NOW_S + 300,
        "nonce": NONCE,
    }
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def sign(
    body: dict[str, Any],
    key: bytes = RSA_PEM,
    algorithm: str = "RS256",
    kid: str = "rsa-1",
    access_token: str | None = None,
) -> str:
    """A compact JWS of `body` signed with `key`."""
    headers = {"kid": kid}
    return str(jwt.encode(body, key, algorithm, headers=headers, access_token=access_token))


def check(token: str, access_token: str | None = None) -> dict[str, Any]:
    """Run the verifier against JWKS with this module's client, issuer, nonce and time."""
    return verify_id_token(
        token,
        JWKS,
        client_id=CLIENT_ID,
        issuers=[ISSUER],
        nonce=NONCE,
        access_token=access_token,
        now_ms=NOW_MS,
    )


def b64(data: bytes) -> str:
    """base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forge_hs256(body: dict[str, Any], secret: bytes, kid: str) -> str:
    """An HS256 token whose HMAC secret is `secret` (e.g. the provider's public key)."""
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode())
    payload = b64(json.dumps(body).encode())
    mac = hmac.new(secret, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{b64(mac)}"


def test_valid_tokens_pass() -> None:
    """RS256 and ES256 id_tokens with the right claims (and at_hash) are accepted."""
    assert check(sign(claims()))["sub"] == "user-1"
    assert check(sign(claims(), EC_PEM, "ES256", "ec-1"))["email"] == "user@example.test"
    assert check(sign(claims(), access_token="at-1"), access_token="at-1")["sub"] == "user-1"
    assert check(sign(claims(exp=NOW_S - 60)))  # within the clock-skew leeway


def _unsigned() -> str:
    header = b64(json.dumps({"alg": "none"}).encode())
    return f"{header}.{b64(json.dumps(claims()).encode())}."


def _tampered() -> str:
    header, _, signature = sign(claims()).split(".")
    return f"{header}.{b64(json.dumps(claims(sub='admin')).encode())}.{signature}"


@pytest.mark.parametrize(
    ("token", "access_token", "reason"),
    [
        (sign(claims(nonce="other")), None, "nonce"),
        (sign(claims(nonce=None)), None, "nonce"),
        (sign(claims(aud="another-client")), None, "audience"),
        (sign(claims(aud=[CLIENT_ID, "another"])), None, "audience"),  # no azp
        (sign(claims(azp="another-client")), None, "audience"),
        (sign(claims(aud=None)), None, "audience"),
        (sign(claims(iss="https://evil.example")), None, "issuer"),
        (sign(claims(iss=None)), None, "issuer"),
        (sign(claims(exp=NOW_S - 121)), None, "expired"),
        (sign(claims(exp=None)), None, "expired"),
        (sign(claims(iat=NOW_S + 3600)), None, "notYetValid"),
        (sign(claims(), OTHER_RSA_PEM), None, "signature"),  # re-signed with another key
        (_tampered(), None, "signature"),
        (sign(claims(), access_token="at-1"), "at-2", "atHash"),
        (sign(claims(), kid="rsa-2"), None, "unknownKey"),
        (sign(claims(), EC_PEM, "ES256", "rsa-1"), None, "unknownKey"),  # kid of another kty
        (_unsigned(), None, "algorithm"),
        ("not-a-jwt", None, "malformed"),
    ],
    ids=[
        "wrong-nonce",
        "no-nonce",
        "wrong-audience",
        "two-audiences-no-azp",
        "other-azp",
        "no-audience",
        "wrong-issuer",
        "no-issuer",
        "expired",
        "no-exp",
        "issued-in-future",
        "re-signed",
        "tampered",
        "at-hash",
        "unknown-kid",
        "kid-of-other-type",
        "alg-none",
        "malformed",
    ],
)
def test_bad_tokens_refused(token: str, access_token: str | None, reason: str) -> None:
    """Each broken id_token is refused, with the reason that names what is wrong."""
    with pytest.raises(JoseFailure) as refused:
        check(token, access_token)
    assert refused.value.reason == reason


def _provider_public_key(idp: Idp) -> tuple[dict[str, Any], bytes, bytes]:
    """The provider's real signing key: its JWK, PEM and DER (SubjectPublicKeyInfo) forms."""
    with urllib.request.urlopen(idp.jwks_url, timeout=10) as response:
        (key,) = json.loads(response.read())["keys"]
    pem = jwk.construct(key, "RS256").to_pem()
    public = serialization.load_pem_public_key(pem)
    der = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return key, pem, der


async def test_hs256_forged_with_the_providers_public_key_refused(
    flow_client: Client, flow_app: str, flow_idp: Idp, flow_core: Core
) -> None:
    """HS256 tokens whose HMAC secret is the provider's RSA public key (PEM, DER) are refused."""
    key, pem, der = _provider_public_key(flow_idp)
    now_s = flow_core.clock.now_ms() // 1000
    body = {
        "iss": flow_idp.issuer,
        "aud": flow_idp.client_id,
        "sub": "victim",
        "email": "victim@example.test",
        "iat": now_s,
        "exp": now_s + 300,
        "nonce": NONCE,
    }
    app = await flow_core.apps.require(flow_app)
    for secret in (pem, der):
        forged = forge_hs256(body, secret, str(key["kid"]))
        if secret is der:  # without algorithms=, python-jose itself would accept this one
            assert json.loads(jws.verify(forged, der, algorithms=None)) == body
        with pytest.raises(errors.IdTokenInvalid) as refused:
            await flow_core.identity.verify(app, forged, NONCE, None)
        assert refused.value.details == {"reason": "algorithm"}


async def test_flow_with_a_wrong_nonce_refused(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
) -> None:
    """The provider's real id_token carries the flow's nonce; another stored nonce fails it."""
    consent_url = await start_consent(flow_client, flow_admin, account="nonce")
    nonce = flow_core.signer.verify(query_of(consent_url)["state"])["n"]
    key = flow_core.keys.state(nonce)
    record = orjson.loads(str(await redis.get(key)))
    record["nonce"] = "not-the-nonce-that-was-sent"
    await redis.set(key, orjson.dumps(record), px=60_000)
    resp = await follow(flow_client, await authorize_as(flow_idp, consent_url, "nonce"))
    page = await resp.text()
    assert resp.status == 502 and "IdTokenInvalid" in page and "nonce" in page
    assert (await flow_client.get("/v1/account/nonce", headers=flow_admin)).status == 404
