"""AES-256-GCM at rest: round trips, binding to the record, key ids and rotation."""

from __future__ import annotations

import pytest

from service.crypto.cipher import Cipher, DecryptError, key_id

KEY_A = bytes(32)
KEY_B = bytes(range(32))


def test_round_trip_and_no_plaintext() -> None:
    """A value decrypts for its record and its stored form does not contain the plaintext."""
    cipher = Cipher(KEY_A)
    sealed = cipher.encrypt("ya29.secret-token", "acct:a:accessToken")
    assert "ya29" not in sealed
    assert sealed.startswith(key_id(KEY_A) + ":")
    assert cipher.decrypt(sealed, "acct:a:accessToken") == "ya29.secret-token"


def test_bound_to_record() -> None:
    """A value moved to another record (other associated data) does not decrypt."""
    cipher = Cipher(KEY_A)
    sealed = cipher.encrypt("token", "acct:a:refreshToken")
    with pytest.raises(DecryptError):
        cipher.decrypt(sealed, "acct:b:refreshToken")


def test_tampering_detected() -> None:
    """A changed byte of the ciphertext is refused."""
    cipher = Cipher(KEY_A)
    kid, _, payload = cipher.encrypt("token", "x").partition(":")
    flipped = payload[:-2] + ("A" if payload[-2] != "A" else "B") + payload[-1]
    with pytest.raises(DecryptError):
        cipher.decrypt(f"{kid}:{flipped}", "x")


def test_old_keys_still_decrypt() -> None:
    """After rotation, values under an old key decrypt; new values use the new key."""
    old = Cipher(KEY_A).encrypt("token", "x")
    rotated = Cipher(KEY_B, (KEY_A,))
    assert rotated.decrypt(old, "x") == "token"
    assert rotated.key_id_of(rotated.encrypt("token", "x")) == key_id(KEY_B)
    with pytest.raises(DecryptError):
        Cipher(KEY_B).decrypt(old, "x")
