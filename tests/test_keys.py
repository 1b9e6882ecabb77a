"""Key layout: partitions by crc32, one hash tag per partition, globals under one tag."""

from __future__ import annotations

import re

import pytest

from service.store.keys import CacheNames, Keys
from service.store.scripts import SCRIPT_NAMES, script_source

TAG = re.compile(r"\{([^}]*)\}")


def test_account_keys_share_their_partition_tag() -> None:
    """Record, lock, schedule, events and indexes of an account carry the same hash tag."""
    keys = Keys("tb", 8)
    for account in ("a", "user@example.com", "x" * 256):
        part = keys.partition_of(account)
        names = [
            keys.account(account),
            keys.lock(account),
            keys.schedule(part),
            keys.events(part),
            keys.index(part),
            keys.index(part, "reauth_required"),
            keys.search(part),
            keys.scope_sets(part),
            keys.app_counts(part),
        ]
        tags = {m.group(1) for m in map(TAG.search, names) if m is not None}
        assert tags == {f"p{part}"}
        assert all(TAG.search(n) for n in names)


def test_active_accounts_have_no_index_of_their_own() -> None:
    """Asking for the index of active accounts is a mistake (service/account_index.py)."""
    with pytest.raises(ValueError, match="all minus"):
        Keys("tb", 1).index(0, "active")
    assert Keys("tb", 1).legacy_active_index(0) == "tb:{p0}:idx:active"


def test_partitions_spread_accounts() -> None:
    """With 8 partitions, 1,000 accounts land in every partition."""
    keys = Keys("tb", 8)
    assert {keys.partition_of(f"acct{i}") for i in range(1000)} == set(range(8))


def test_prefix_and_globals() -> None:
    """Every key starts with the prefix; global keys share one tag."""
    keys = Keys("custom", 1)
    names = [keys.apps, keys.app("x"), keys.settings, keys.api_token("d"), keys.api_token_ids]
    assert all(n.startswith("custom:{g}:") for n in names)
    assert keys.account("a") == "custom:{p0}:acct:a"


def test_no_script_spells_a_cache_name() -> None:
    """Every PUBLISH of a Lua script sends a name given as ARGV (built with CacheNames)."""
    publishes = [
        line
        for name in SCRIPT_NAMES
        for line in script_source(name).splitlines()
        if "'PUBLISH'" in line
    ]
    assert len(publishes) == 9  # account_update_profile and app_credential_notice too
    assert all(re.search(r"'PUBLISH', ARGV\[\d+\], ARGV\[\d+\]\)", line) for line in publishes)
    assert CacheNames.account("a") == "acct:a" and CacheNames.app("a") == "app:a"


def test_scripts_have_their_includes_filled_in() -> None:
    """A `-- include: X` line becomes X.lua's text: the search functions are written once."""
    for name in ("account_save", "account_delete", "account_restore", "account_search_index"):
        text = script_source(name)
        assert "-- include:" not in text
        assert text.count("local function search_entries") == 1, name
