"""Client authentication at a token endpoint: a client secret, or a certificate's assertion."""

from __future__ import annotations

import secrets
import time

from service.crypto.credentials import Certificate, ClientCredential
from service.oauth.jose import sign_client_assertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME_S = 300  # Microsoft accepts up to 10 minutes; a short life limits replay


def attach(
    client_id: str, credential: ClientCredential | None, form: dict[str, str], audience: str
) -> dict[str, str]:
    """The token request's form with the client's authentication in the body.

    A certificate signs a fresh client assertion (aud = the endpoint called); a secret goes
    as client_secret (client_secret_post); no credential sends the client id alone.
    """
    auth = {"client_id": client_id}
    if credential is not None and credential.certificate is not None:
        auth["client_assertion_type"] = ASSERTION_TYPE
        auth["client_assertion"] = client_assertion(client_id, credential.certificate, audience)
    elif credential is not None and credential.secret is not None:
        auth["client_secret"] = credential.secret
    return {**form, **auth}


def client_assertion(client_id: str, certificate: Certificate, audience: str) -> str:
    """A signed JWT naming the client (iss = sub = client id) for this endpoint only."""
    now_s = int(time.time())  # wall clock: the provider checks exp/nbf against its own
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": secrets.token_urlsafe(24),
        "iat": now_s,
        "nbf": now_s,
        "exp": now_s + ASSERTION_LIFETIME_S,
    }
    headers = {"x5t": certificate.x5t, "x5t#S256": certificate.x5t_s256}
    return sign_client_assertion(claims, certificate.key_pem, headers)


__all__ = ["ASSERTION_TYPE", "ClientCredential", "attach", "client_assertion"]
