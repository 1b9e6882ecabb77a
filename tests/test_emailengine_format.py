"""EmailEngine's formats: `$wd01$` values, the account set and its strays, the key prefix."""

from __future__ import annotations

import json

import pytest
from redis.asyncio import Redis

from service.ops.emailengine_format import EeReader, EmailEngineError, decrypt
from service.store.embedded import RedisProcess
from tests.support.emailengine import EE_DB, FIXTURES, MANIFEST, load_dump


def test_decrypt_needs_the_right_secret() -> None:
    """A `$wd01$` value decrypts with EENGINE_SECRET and fails clearly with another one."""
    dump = json.loads((FIXTURES / "redis-dump-A.json").read_text())
    stored = json.loads(dump["keys"]["iad:a-gmail-1"]["value"]["oauth2"])
    assert decrypt(stored["accessToken"], MANIFEST["eengineSecret"]) == "AT-A-gmail-1"
    with pytest.raises(EmailEngineError):
        decrypt(stored["accessToken"], "another secret")
    assert decrypt("plain", "any") == "plain"


async def ee_redis(redis_server: RedisProcess, db: int, prefix: str = "") -> Redis:
    """A client of database `db` holding the recorded dump (under `prefix`)."""
    client = Redis.from_url(redis_server.url[:-1] + str(db), decode_responses=False)
    await load_dump(client, FIXTURES / "redis-dump-A.json", prefix=prefix)
    return client


async def test_stray_hash_in_the_account_set_is_not_an_account(
    redis_server: RedisProcess, redis: Redis
) -> None:
    """An id in ia:accounts whose hash lacks the account field is reported as a stray."""
    ee = await ee_redis(redis_server, EE_DB)
    await ee.sadd("ia:accounts", "a-del-revoke")  # its leftover counter-only hash
    data = await EeReader(ee, MANIFEST["eengineSecret"]).read()
    assert data.strays == ["a-del-revoke"]
    assert "a-del-revoke" not in [a.id for a in data.accounts]
    await ee.aclose()


async def test_prefix_selects_emailengine_keys(redis_server: RedisProcess, redis: Redis) -> None:
    """With --prefix's value the reader finds a prefixed EmailEngine's data, without it nothing."""
    client = await ee_redis(redis_server, EE_DB + 1, prefix="ee:")
    try:
        found = await EeReader(client, MANIFEST["eengineSecret"], "ee:").read()
        assert set(found.apps) == {a["id"] for a in MANIFEST["apps"]}
        assert (await EeReader(client, MANIFEST["eengineSecret"]).read()).apps == {}
    finally:
        await client.aclose()
