"""Online key rotation: every sealed field moves to the new key, resumably, never over a write."""

from __future__ import annotations

import base64
from collections import Counter
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from service.core import Core
from service.crypto.cipher import Cipher, key_id
from service.crypto.rotation import KeyRotation, Row
from service.crypto.sealed import Record
from service.progress import Progress
from service.sealed_records import SealedRecords, account_record
from service.store.embedded import RedisProcess
from tests.conftest import TEST_SECRET
from tests.support.sealed_data import (
    NEW_KEY,
    OLD_KEY,
    make_accounts,
    make_app,
    make_webhook_headers,
    make_webhook_secrets,
    plaintexts,
)
from tests.test_cli import Cli, Result, base_env, run

NEW = Cipher(NEW_KEY, (TEST_SECRET,))
NEW_ONLY = Cipher(NEW_KEY)
OLD_ID, NEW_ID = key_id(TEST_SECRET), key_id(NEW_KEY)
COUNT = 60  # accounts: several SCAN batches at batch=10


@pytest.fixture
async def data(core: Core) -> dict[tuple[str, str], str]:
    """Two apps, COUNT accounts, webhook secrets and headers under the old key; plaintexts."""
    app = await make_app(core)
    await make_app(core, "outlook")
    await make_accounts(core, app, COUNT)
    await make_webhook_secrets(core)
    await make_webhook_headers(core)
    return await plaintexts(core.redis, core.keys, core.cipher)


@pytest.fixture
def tb(redis_server: RedisProcess, core: Core, tmp_path: Path) -> Cli:
    """Run `tokenbroker ARGS` against the test Redis, with the given variables on top."""

    async def go(*args: str, **env_overrides: str) -> Result:
        env = base_env(redis_server.url)
        env.update(env_overrides)
        return await run(*args, env=env, cwd=tmp_path)

    return go


def rotation(core: Core, cipher: Cipher = NEW) -> KeyRotation:
    """A rotation to `cipher`'s current key on the test Redis."""
    return KeyRotation(core.redis, core.scripts, cipher, SealedRecords(core.redis, core.keys))


async def test_rotate_moves_every_value_to_the_new_key(
    core: Core, data: dict[tuple[str, str], str]
) -> None:
    """After a run every value opens with the new key alone, with the same plaintext."""
    values = len(data)
    assert values == 2 + 2 * COUNT - COUNT // 5 + 3  # apps, tokens (some lack access), webhooks
    assert data[("settings", "webhookHeaderValues")] == '{"Authorization":"Bearer hook-token"}'
    assert await rotation(core).status() == Counter({OLD_ID: values})
    stats = await rotation(core).rotate(batch=10)
    assert stats.complete and stats.rotated == values and stats.records == 1 + 2 + COUNT
    assert await rotation(core).status() == Counter({NEW_ID: values})
    assert await plaintexts(core.redis, core.keys, NEW_ONLY) == data


class Interrupted(Exception):
    """Raised by StopAfter to cut a run short, as Ctrl-C or a crash would."""


class StopAfter(Progress):
    """A progress line that interrupts the run after `batches` batches."""

    def __init__(self, batches: int) -> None:
        super().__init__("test", None)
        self.left = batches

    def advance(self, amount: int = 1, note: str | None = None) -> None:
        """Count a batch; interrupt when none is left."""
        self.left -= 1
        if self.left == 0:
            raise Interrupted


async def test_rotate_resumes_after_an_interruption(
    core: Core, data: dict[tuple[str, str], str]
) -> None:
    """A run cut short leaves some values old; the next finishes only those; a third has none."""
    with pytest.raises(Interrupted):
        await rotation(core).rotate(batch=10, progress=StopAfter(3))
    halfway = await rotation(core).status()
    assert halfway[OLD_ID] > 0 and halfway[NEW_ID] > 0
    stats = await rotation(core).rotate(batch=10)
    assert stats.complete and stats.rotated == halfway[OLD_ID]
    again = await rotation(core).rotate(batch=10)
    assert again.complete and again.rotated == 0
    assert await plaintexts(core.redis, core.keys, NEW_ONLY) == data


class WriterBetween(KeyRotation):
    """A rotation during which a refresh writes a new token right after the first read."""

    def __init__(self, core: Core, record: Record, writer: Cipher) -> None:
        super().__init__(core.redis, core.scripts, NEW, SealedRecords(core.redis, core.keys))
        self.record, self.writer, self.reads = record, writer, 0

    async def _read(self, batch: list[Record]) -> list[Row]:
        rows = await super()._read(batch)
        self.reads += 1
        if self.reads == 3 and self.record in batch:  # settings, apps, then the accounts batch
            sealed = self.writer.encrypt("written-meanwhile", self.record.aad("refreshToken"))
            await self.redis.hset(self.record.key, "refreshToken", sealed)
        return rows


@pytest.mark.parametrize("writer_key", [TEST_SECRET, NEW_KEY], ids=["old-key", "new-key"])
async def test_rotate_never_overwrites_a_concurrent_write(
    core: Core, data: dict[tuple[str, str], str], writer_key: bytes
) -> None:
    """A token written between read and replace survives; the record is read again and done."""
    record = account_record(core.keys, "acct1")
    run = WriterBetween(core, record, Cipher(writer_key))
    stats = await run.rotate(batch=1000)
    assert stats.complete and stats.retried == 1
    after = await plaintexts(core.redis, core.keys, NEW_ONLY)
    assert after[(record.name, "refreshToken")] == "written-meanwhile"
    assert after[(record.name, "accessToken")] == data[(record.name, "accessToken")]
    assert await rotation(core).status() == Counter({NEW_ID: len(data)})


async def test_swap_script_compares_the_exact_value(core: Core, redis: Redis) -> None:
    """hash_swap_fields sets a field only while it holds the value read; missing stays missing."""
    key = core.keys.app("swap-test")
    await redis.hset(key, mapping={"a": "old-a", "b": "changed"})
    args = ["a", "old-a", "new-a", "b", "old-b", "new-b", "c", "old-c", "new-c"]
    assert await core.scripts.run("hash_swap_fields", [key], args) == 1
    assert await redis.hgetall(key) == {"a": "new-a", "b": "changed"}


async def test_unknown_key_is_reported_and_left_alone(
    core: Core, data: dict[tuple[str, str], str], redis: Redis
) -> None:
    """A value under a key no one configured is counted by its key id, never changed or lost."""
    record = account_record(core.keys, "acct3")
    stray = Cipher(OLD_KEY).encrypt("stray", record.aad("accessToken"))
    await redis.hset(record.key, "accessToken", stray)
    stats = await rotation(core).rotate()
    assert not stats.complete and stats.unreadable == Counter({key_id(OLD_KEY): 1})
    assert await redis.hget(record.key, "accessToken") == stray
    assert (await rotation(core).status())[key_id(OLD_KEY)] == 1


async def test_keys_commands(tb: Cli, data: dict[tuple[str, str], str]) -> None:
    """`keys status` counts by key id; `keys rotate` shows progress, leaves none under the old."""
    env = {
        "TOKENBROKER_SECRET": base64.b64encode(NEW_KEY).decode(),
        "TOKENBROKER_OLD_SECRETS": base64.b64encode(TEST_SECRET).decode(),
    }
    before = await tb("keys", "status", "--json", **env)
    assert before.code == 0, before.stderr
    shown = orjson.loads(before.stdout)
    assert shown["current"] == NEW_ID
    assert {r["keyId"]: (r["role"], r["values"]) for r in shown["keys"]} == {
        OLD_ID: ("old", len(data)),
        NEW_ID: ("current", 0),
    }
    rotated = await tb("keys", "rotate", "--batch", "10", **env)
    assert rotated.code == 0, rotated.stderr
    assert "keys rotate [" in rotated.stderr and "100%" in rotated.stderr
    assert f"re-encrypted {len(data)} values" in rotated.stdout
    table = await tb("keys", "status", **env)
    assert table.code == 0, table.stderr
    rows = {line.split()[0]: line.split()[1:] for line in table.stdout.splitlines()[1:]}
    assert rows == {OLD_ID: ["0", "old"], NEW_ID: [str(len(data)), "current"]}
    for output in (before, rotated, table):
        assert not any(p in output.stdout + output.stderr for p in data.values())
