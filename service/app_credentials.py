"""An app's two credential slots (current and next): their fields, input, use and promotion."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from service import errors, limits, validate
from service.clock import iso
from service.crypto.cipher import Cipher
from service.crypto.credentials import (
    CERTIFICATE_KINDS,
    SLOTS,
    ClientCredential,
    Slot,
    certificate,
    certificate_facts,
    check_key_pair,
)


@dataclass(frozen=True)
class SlotFields:
    """The hash fields of one slot: a secret, or a certificate and its key; an expiry date."""

    secret: str
    certificate: str
    key: str
    expires: str
    notice: str  # the last expiry notice sent for this slot (credential_watch)


FIELDS: dict[Slot, SlotFields] = {
    "current": SlotFields(
        "clientSecret",
        "clientCertificate",
        "clientCertificateKey",
        "credentialExpires",
        "credentialNotice",
    ),
    "next": SlotFields(
        "nextClientSecret",
        "nextClientCertificate",
        "nextClientCertificateKey",
        "nextCredentialExpires",
        "nextCredentialNotice",
    ),
}
IN_USE = "credentialInUse"  # "next" once the next credential is the one that works
SEALED = ("clientCertificateKey", "nextClientSecret", "nextClientCertificateKey")
PLAIN = (
    "clientCertificate", "credentialExpires", "credentialNotice", "nextClientCertificate",
    "nextCredentialExpires", "nextCredentialNotice", IN_USE,
)  # fmt: skip
INPUT = {
    "clientCertificate", "clientCertificateKey", "credentialExpires",
    "nextClientSecret", "nextClientCertificate", "nextClientCertificateKey",
    "nextCredentialExpires",
}  # fmt: skip


class HasCredentials(Protocol):
    """What this module reads of an app (service.apps.App)."""

    @property
    def id(self) -> str:
        """The app's id (bound into each ciphertext)."""

    @property
    def fields(self) -> dict[str, str]:
        """The app's plain fields."""

    @property
    def encrypted(self) -> dict[str, str]:
        """The app's sealed credential fields."""


def has_slot(app: HasCredentials, slot: Slot) -> bool:
    """Whether the slot holds a secret or a certificate."""
    names = FIELDS[slot]
    return names.secret in app.encrypted or names.key in app.encrypted


def in_use(app: HasCredentials) -> Slot:
    """The slot that worked last (current unless a retry found only the next one working)."""
    return "next" if app.fields.get(IN_USE) == "next" and has_slot(app, "next") else "current"


def ordered(app: HasCredentials, cipher: Cipher) -> list[ClientCredential]:
    """The app's credentials, decrypted, the one in use first (empty: send the client id)."""
    first = in_use(app)
    slots = [first, *(s for s in SLOTS if s != first)]
    return [decrypt(app, slot, cipher) for slot in slots if has_slot(app, slot)]


def decrypt(app: HasCredentials, slot: Slot, cipher: Cipher) -> ClientCredential:
    """One slot's credential for a call to the provider (never logged, never shown)."""
    names = FIELDS[slot]
    if names.key in app.encrypted:
        key = cipher.decrypt(app.encrypted[names.key], f"app:{app.id}:{names.key}")
        return ClientCredential(slot, certificate=certificate(app.fields[names.certificate], key))
    secret = cipher.decrypt(app.encrypted[names.secret], f"app:{app.id}:{names.secret}")
    return ClientCredential(slot, secret=secret)


def kind(app: HasCredentials, slot: Slot) -> str:
    """Certificate or secret (what the slot holds)."""
    return "certificate" if FIELDS[slot].key in app.encrypted else "secret"


def expiry_ms(app: HasCredentials, slot: Slot) -> int | None:
    """When the slot's credential dies: the recorded date, else the certificate's notAfter."""
    names = FIELDS[slot]
    if not has_slot(app, slot):
        return None
    if names.expires in app.fields:
        return validate.iso_time(app.fields, names.expires)
    if names.key in app.encrypted and names.certificate in app.fields:
        return certificate_facts(app.fields[names.certificate]).not_after_ms
    return None


def describe(app: HasCredentials) -> dict[str, Any]:
    """The slots as the API shows them: type, expiry, thumbprints; never a secret or key."""
    shown: dict[str, Any] = {"inUse": in_use(app)}
    for slot in SLOTS:
        names = FIELDS[slot]
        if not has_slot(app, slot):
            shown[slot] = None
            continue
        expires = expiry_ms(app, slot)
        entry: dict[str, Any] = {
            "type": kind(app, slot),
            "expires": iso(expires) if expires is not None else None,
        }
        if names.key in app.encrypted:
            facts = certificate_facts(app.fields[names.certificate])
            entry.update({"x5t": facts.x5t, "x5tS256": facts.x5t_s256, "subject": facts.subject})
        shown[slot] = entry
    return shown


def input_pairs(kind: str, body: dict[str, Any], app_id: str, cipher: Cipher) -> dict[str, str]:
    """Certificates, the next secret and expiry dates from the body (secrets/keys sealed)."""
    pairs: dict[str, str] = {}
    for slot in SLOTS:
        names = FIELDS[slot]
        if body.get(names.certificate) is not None or body.get(names.key) is not None:
            pairs.update(_certificate_pairs(kind, body, names, app_id, cipher))
        if slot == "next" and body.get(names.secret) is not None:
            secret = validate.string(body, names.secret, max_len=limits.CLIENT_SECRET_MAX)
            pairs[names.secret] = cipher.encrypt(
                str(secret).strip(), f"app:{app_id}:{names.secret}"
            )
        expires = validate.iso_time(body, names.expires)
        if expires is not None:
            pairs[names.expires] = iso(expires)
    return pairs


def removed_fields(body: dict[str, Any], pairs: dict[str, str]) -> list[str]:
    """Fields a credential change deletes: the slot's other kind, its notices, the in-use mark.

    `nextClientSecret: null` (or `nextClientCertificate: null`) empties the next slot.
    """
    removed: list[str] = []
    for slot in SLOTS:
        names = FIELDS[slot]
        if slot == "next" and any(
            n in body and body[n] is None for n in (names.secret, names.certificate)
        ):
            removed += [names.secret, names.certificate, names.key, names.expires]
        if names.secret in pairs:
            removed += [names.certificate, names.key]
        if names.key in pairs:
            removed.append(names.secret)
        if names.expires in body and body[names.expires] is None:
            removed.append(names.expires)
        if any(n in removed or n in pairs for n in (names.secret, names.key, names.expires)):
            removed += [names.notice, IN_USE]
    return sorted(set(removed) - set(pairs))


def promotion(app: HasCredentials, cipher: Cipher) -> tuple[dict[str, str], list[str]]:
    """The hash change that makes the next credential the current one (NoNextCredential)."""
    if not has_slot(app, "next"):
        raise errors.NoNextCredential(f"the app {app.id!r} holds no next credential to promote")
    now, nxt = FIELDS["current"], FIELDS["next"]
    credential = decrypt(app, "next", cipher)
    pairs: dict[str, str] = {}
    if credential.certificate is not None:
        pairs[now.certificate] = app.fields[nxt.certificate]
        pairs[now.key] = cipher.encrypt(credential.certificate.key_pem, f"app:{app.id}:{now.key}")
    else:
        pairs[now.secret] = cipher.encrypt(str(credential.secret), f"app:{app.id}:{now.secret}")
    if nxt.expires in app.fields:
        pairs[now.expires] = app.fields[nxt.expires]
    removed = [*(n for n in vars(now).values() if n not in pairs), *vars(nxt).values(), IN_USE]
    return pairs, sorted(set(removed))


def _certificate_pairs(
    kind: str, body: dict[str, Any], names: SlotFields, app_id: str, cipher: Cipher
) -> dict[str, str]:
    if kind not in CERTIFICATE_KINDS:
        raise errors.InvalidInput(
            f"certificates (private_key_jwt) apply to {', '.join(sorted(CERTIFICATE_KINDS))} apps",
            details={"field": names.certificate},
        )
    for name in (names.certificate, names.key):
        if not isinstance(body.get(name), str) or not body[name].strip():
            raise errors.InvalidCertificate(
                f"{names.certificate} and {names.key} go together", details={"field": name}
            )
    cert = validate.string(body, names.certificate, required=True, max_len=limits.CERTIFICATE_MAX)
    key = validate.string(body, names.key, required=True, max_len=limits.CERTIFICATE_MAX)
    cert, key = str(cert).strip(), str(key).strip()
    certificate_facts(cert, names.certificate)
    check_key_pair(cert, key, names.key)
    return {
        names.certificate: cert,
        names.key: cipher.encrypt(key, f"app:{app_id}:{names.key}"),
    }


__all__ = [
    "FIELDS",
    "INPUT",
    "IN_USE",
    "PLAIN",
    "SEALED",
    "describe",
    "expiry_ms",
    "has_slot",
    "in_use",
    "input_pairs",
    "kind",
    "ordered",
    "promotion",
    "removed_fields",
]
