"""Client credentials of an app: a secret or a certificate with its key (slot current/next)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from typing import Literal

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from service import errors

CERTIFICATE_KINDS = frozenset({"outlook", "outlookService", "oidc"})  # private_key_jwt
Slot = Literal["current", "next"]
SLOTS: tuple[Slot, ...] = ("current", "next")


@dataclass(frozen=True)
class Certificate:
    """A certificate credential: the private key (never shown) and the certificate's facts."""

    key_pem: str = field(repr=False)
    x5t: str
    x5t_s256: str
    not_after_ms: int


@dataclass(frozen=True)
class ClientCredential:
    """One of an app's credentials, decrypted for one call: a secret or a certificate."""

    slot: Slot
    secret: str | None = field(default=None, repr=False)
    certificate: Certificate | None = None

    @property
    def method(self) -> str:
        """private_key_jwt with a certificate, client_secret_post with a secret."""
        return "private_key_jwt" if self.certificate is not None else "client_secret_post"


@dataclass(frozen=True)
class CertificateFacts:
    """What the settings and the API show of a certificate (thumbprints and validity)."""

    x5t: str
    x5t_s256: str
    not_after_ms: int
    subject: str


def certificate_facts(cert_pem: str, field_name: str = "clientCertificate") -> CertificateFacts:
    """Parse a PEM certificate; InvalidCertificate when it is not one."""
    try:
        cert = x509.load_pem_x509_certificate(cert_pem.encode())
    except ValueError:
        raise errors.InvalidCertificate(
            f"{field_name} must be a PEM certificate", details={"field": field_name}
        ) from None
    der = cert.public_bytes(serialization.Encoding.DER)
    return CertificateFacts(
        x5t=_b64url(hashlib.sha1(der, usedforsecurity=False).digest()),
        x5t_s256=_b64url(hashlib.sha256(der).digest()),
        not_after_ms=int(cert.not_valid_after_utc.timestamp() * 1000),
        subject=cert.subject.rfc4514_string(),
    )


def check_key_pair(cert_pem: str, key_pem: str, key_field: str) -> None:
    """The key must be an unencrypted RSA private key belonging to the certificate."""
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    try:
        key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    except (ValueError, TypeError):
        raise errors.InvalidCertificate(
            f"{key_field} must be an unencrypted PEM private key", details={"field": key_field}
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise errors.InvalidCertificate(
            f"{key_field} must be an RSA key", details={"field": key_field}
        )
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey) or (
        key.public_key().public_numbers() != public.public_numbers()
    ):
        raise errors.InvalidCertificate(
            f"{key_field} does not belong to the certificate", details={"field": key_field}
        )


def certificate(cert_pem: str, key_pem: str) -> Certificate:
    """The certificate credential of a stored certificate and its decrypted key."""
    facts = certificate_facts(cert_pem)
    return Certificate(key_pem, facts.x5t, facts.x5t_s256, facts.not_after_ms)


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


__all__ = [
    "CERTIFICATE_KINDS",
    "SLOTS",
    "Certificate",
    "CertificateFacts",
    "ClientCredential",
    "Slot",
    "certificate",
    "certificate_facts",
    "check_key_pair",
]
