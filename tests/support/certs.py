"""Self-signed certificates for certificate credentials; the provider's credential hooks."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from tests.support.idp import CLIENT_ID, Idp, JsonDict, _http_json


@dataclass(frozen=True)
class SelfSigned:
    """A certificate and its private key, both PEM."""

    cert_pem: str
    key_pem: str = field(repr=False)


def self_signed(name: str = "tokenbroker-test", days: int = 365) -> SelfSigned:
    """A fresh RSA-2048 key and a self-signed certificate for it, valid `days` from now."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SelfSigned(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def server_certificate(host: str = "localhost", days: int = 30) -> SelfSigned:
    """A self-signed TLS server certificate for `host` and 127.0.0.1 (its own trust anchor)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return SelfSigned(cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem)


def _hook(idp: Idp, method: str, name: str, body: JsonDict | None = None) -> JsonDict:
    status, payload = _http_json(method, f"{idp.issuer}/__test/clients/{name}", body)
    if status != 200:
        raise RuntimeError(f"test IdP hook clients/{name} answered {status}: {payload}")
    return payload


def register_secret(idp: Idp, name: str, secret: str, client_id: str = CLIENT_ID) -> None:
    """Give the client one more valid secret (its built-in one is named 'default')."""
    _hook(idp, "POST", "credentials", {"client_id": client_id, "name": name, "secret": secret})


def register_certificate(
    idp: Idp, name: str, cert_pem: str, client_id: str = CLIENT_ID
) -> JsonDict:
    """Register a certificate for private_key_jwt; returns its thumbprints."""
    body: JsonDict = {"client_id": client_id, "name": name, "certificate": cert_pem}
    return _hook(idp, "POST", "credentials", body)


def expire_credential(idp: Idp, name: str, client_id: str = CLIENT_ID) -> None:
    """Make the provider refuse that secret or certificate from now on (invalid_client)."""
    _hook(idp, "POST", "expire", {"client_id": client_id, "name": name})


def auth_attempts(idp: Idp) -> list[JsonDict]:
    """Every checked client authentication: {client_id, method, name, ok, error}."""
    attempts = _hook(idp, "GET", "log")["attempts"]
    assert isinstance(attempts, list)
    return attempts
