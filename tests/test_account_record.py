"""The account record: one builder of its fields, and scripts that use only its field names."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from service.account_record import (
    FIELDS,
    SEALED_FIELDS,
    AccountWrite,
    F,
    account_fields,
    account_from_hash,
    sealed_aad,
)
from service.crypto.cipher import Cipher

KEY = bytes(range(32))
QUOTED = re.compile(r"'([A-Za-z]+)'")
NOT_FIELDS = {"HGET", "HSET", "HDEL", "EXISTS", "HINCRBY", "ZADD", "ZREM", "XADD", "XX", "DEL"}
NOT_FIELDS |= {"GET", "PUBLISH", "PEXPIRE", "payload", "new", "existing", "ok", "late", "gone"}
NOT_FIELDS |= {"superseded", "active", "reauth_required", "app_mismatch", "acct"}
NOT_FIELDS |= {"PEXPIREAT", "PEXPIRETIME"}


def test_builder_seals_tokens_to_the_account() -> None:
    """Tokens are encrypted and bound to the account and field; the rest is plain strings."""
    cipher = Cipher(KEY, ())
    write = AccountWrite(
        app="a", user="u", access_token="AT", refresh_token="RT", expires_at_ms=5, scopes=["x"]
    )
    pairs = account_fields(cipher, "acc", write, 7)
    assert "AT" not in pairs.values() and "RT" not in pairs.values()
    assert cipher.decrypt(pairs[F.REFRESH_TOKEN], sealed_aad("acc", F.REFRESH_TOKEN)) == "RT"
    with pytest.raises(Exception):  # noqa: B017, PT011 - any failure: bound to another record
        cipher.decrypt(pairs[F.REFRESH_TOKEN], sealed_aad("other", F.REFRESH_TOKEN))
    assert pairs[F.EXPIRES_AT] == "5" and pairs[F.UPDATED_AT] == "7" and pairs[F.SCOPES] == '["x"]'
    assert F.NAME not in pairs and F.PREVIOUS_REFRESH_TOKEN not in pairs
    account = account_from_hash(pairs)
    assert account is not None and account.grant_gen == 0 and account.user == "u"


def test_builder_refuses_unknown_identity_fields() -> None:
    """Extra identity fields must be names of the record."""
    with pytest.raises(ValueError, match="unknown account fields"):
        account_fields(Cipher(KEY, ()), "acc", AccountWrite(identity={"bogus": "1"}), 1)


@pytest.mark.parametrize(
    "script",
    [
        "account_save",
        "account_store_tokens",
        "account_mark_reauth",
        "account_note_failure",
        "account_restore",
        "account_delete",
        "account_search_index",
        "account_update_profile",
        "account_store_resource",
    ],
)
def test_scripts_name_only_record_fields(script: str) -> None:
    """Every quoted word an account script uses is a command, a value or a record field."""
    text = resources.files("service.store.lua").joinpath(f"{script}.lua").read_text()
    body = "\n".join(line for line in text.splitlines() if not line.startswith("--"))
    words = set(QUOTED.findall(body)) - NOT_FIELDS
    assert words <= FIELDS, words - FIELDS


def test_every_token_field_is_sealed() -> None:
    """Key rotation and export re-seal exactly the token fields."""
    from service.sealed_records import ACCOUNT_FIELDS

    assert (
        set(ACCOUNT_FIELDS)
        == set(SEALED_FIELDS)
        == {
            F.ACCESS_TOKEN,
            F.REFRESH_TOKEN,
            F.PREVIOUS_REFRESH_TOKEN,
        }
    )
