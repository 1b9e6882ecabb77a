"""Per-resource token entries: fenced on the grant, sealed, lapsing with their last token."""

from __future__ import annotations

from redis.asyncio import Redis

from service.account_outcomes import Written
from service.accounts import Account, account_from_hash
from service.clock import SystemClock
from service.crypto.cipher import Cipher
from service.resource_tokens import ResourceToken, ResourceTokens
from service.store.connection import as_mapping, read_hash
from service.store.keys import Keys
from service.store.replicas import ReplicaWait
from service.store.scripts import Scripts

KEY, OTHER = bytes(range(32)), bytes(range(1, 33))
HOUR_MS = 3_600_000
NOW = SystemClock().now_ms()


async def _setup(redis: Redis, cipher: Cipher) -> tuple[ResourceTokens, Keys]:
    keys = Keys()
    fields = {"account": "a", "app": "ms", "status": "active", "grantGen": "1"}
    await redis.hset(keys.account("a"), mapping=as_mapping(fields))
    return ResourceTokens(redis, keys, Scripts(redis), cipher), keys


async def _account(redis: Redis, keys: Keys) -> Account:
    account = account_from_hash(await read_hash(redis, keys.account("a")))
    assert account is not None
    return account


async def test_an_entry_serves_only_its_grant(redis: Redis) -> None:
    """Stored under generation 1, it is not served once the grant moved to generation 2."""
    store, keys = await _setup(redis, Cipher(KEY))
    account = await _account(redis, keys)
    wait = ReplicaWait(redis, store.scripts, 0)
    token = ResourceToken("AT-graph", NOW + 2 * HOUR_MS, ["Mail.Read"])
    await redis.set(keys.lock("a"), "mine")
    result = await store.store(account, "mine", "slot", token, ("RT2", "RT1"), 1, wait)
    assert result == Written.OK and not await redis.exists(keys.lock("a"))
    assert await store.get(account, "slot") == token
    assert "AT-graph" not in str(await redis.hgetall(keys.account_resources("a")))
    assert await redis.pexpiretime(keys.account_resources("a")) == NOW + 2 * HOUR_MS
    await redis.hincrby(keys.account("a"), "grantGen", 1)
    assert await store.get(await _account(redis, keys), "slot") is None
    again = await store.store(account, "", "slot", token, None, 1, wait)
    assert again == Written.SUPERSEDED  # a result for the old grant writes nothing


async def test_the_hash_lives_as_long_as_its_longest_token(redis: Redis) -> None:
    """A shorter-lived entry never shortens the hash's life; a longer one extends it."""
    store, keys = await _setup(redis, Cipher(KEY))
    account = await _account(redis, keys)
    wait = ReplicaWait(redis, store.scripts, 0)
    for slot, hours in (("a", 3), ("b", 1), ("c", 4)):
        until = NOW + hours * HOUR_MS
        await store.store(account, "", slot, ResourceToken("t", until, []), None, NOW, wait)
        if slot == "b":
            assert await redis.pexpiretime(keys.account_resources("a")) == NOW + 3 * HOUR_MS
    assert await redis.pexpiretime(keys.account_resources("a")) == NOW + 4 * HOUR_MS


async def test_an_entry_sealed_with_a_forgotten_key_reads_as_absent(redis: Redis) -> None:
    """After key rotation drops the old key, the entry is a miss (minted again), not an error."""
    old, _ = await _setup(redis, Cipher(OTHER))
    account = await _account(redis, old.keys)
    wait = ReplicaWait(redis, old.scripts, 0)
    await old.store(account, "", "slot", ResourceToken("t", NOW + 2 * HOUR_MS, []), None, 1, wait)
    new = ResourceTokens(redis, old.keys, old.scripts, Cipher(KEY))
    assert await new.get(account, "slot") is None
