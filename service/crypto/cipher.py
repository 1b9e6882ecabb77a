"""Encryption at rest: AES-256-GCM bound to the record, with a key id prefix."""

from __future__ import annotations

import base64
import hashlib
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from service.errors import Fault

NONCE_BYTES = 12


class DecryptError(Fault):
    """A value could not be decrypted: unknown key id, wrong record, or tampering."""


def key_id(key: bytes) -> str:
    """Return a short, non-secret identifier of a key (first 8 hex of its SHA-256)."""
    return hashlib.sha256(b"tokenbroker-key-id:" + key).hexdigest()[:8]


class Cipher:
    """Encrypts with the current key; decrypts with the current or any old key."""

    def __init__(self, current: bytes, old: tuple[bytes, ...] = ()) -> None:
        self.current_id = key_id(current)
        self._current = AESGCM(current)
        self._keys = {key_id(k): AESGCM(k) for k in old}
        self._keys[self.current_id] = self._current

    def encrypt(self, plaintext: str, aad: str) -> str:
        """Encrypt `plaintext` bound to the record named by `aad`: '<kid>:<base64>'."""
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._current.encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.current_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str, aad: str) -> str:
        """Decrypt a value made by `encrypt` for the same `aad`."""
        kid, _, payload = value.partition(":")
        aead = self._keys.get(kid)
        if aead is None:
            raise DecryptError(f"no key with id {kid!r} is configured")
        try:
            raw = base64.b64decode(payload, validate=True)
            return aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise DecryptError("value does not decrypt for this record") from exc

    def key_id_of(self, value: str) -> str:
        """Return the key id a stored value was encrypted with."""
        return value.partition(":")[0]


def sha256_hex(value: str) -> str:
    """Return the SHA-256 hex digest of a string (API tokens are stored this way)."""
    return hashlib.sha256(value.encode()).hexdigest()
