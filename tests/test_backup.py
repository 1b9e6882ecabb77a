"""`tokenbroker export` / `import`: a round trip keeps every record, index and schedule entry."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis

from service.clock import SystemClock
from service.core import Core
from service.crypto.cipher import Cipher, key_id
from service.ops.backup_format import BackupError
from service.ops.restore import Importer, Timing
from service.sealed_records import ACCOUNT_FIELDS, APP_FIELDS, account_ids
from service.store.connection import read_hash
from service.store.embedded import RedisProcess
from service.store.keys import Keys
from tests.conftest import TEST_SECRET
from tests.support.sealed_data import OLD_KEY, make_accounts, make_app, seal_under
from tests.test_cli import Cli, Result, base_env, run

COUNT = 10_000
ENV = {"TOKENBROKER_OLD_SECRETS": base64.b64encode(OLD_KEY).decode()}
CIPHER = Cipher(TEST_SECRET, (OLD_KEY,))


@pytest.fixture
def tb(redis_server: RedisProcess, core: Core, tmp_path: Path) -> Cli:
    """Run `tokenbroker ARGS` against the test Redis with the old key configured too."""

    async def go(*args: str, **env_overrides: str) -> Result:
        env = {**base_env(redis_server.url), **ENV, **env_overrides}
        return await run(*args, env=env, cwd=tmp_path)

    return go


async def snapshot(redis: Redis, keys: Keys) -> dict[str, Any]:
    """Every account and app, decrypted, with their index, schedule and app-count entries."""
    state: dict[str, Any] = {"apps": {}, "accounts": {}, "appcount": {}}
    for app_id in cast(set[str], await redis.smembers(keys.apps)):
        state["apps"][app_id] = opened(
            await read_hash(redis, keys.app(app_id)), f"app:{app_id}", APP_FIELDS
        )
    async for ids in account_ids(redis, keys, 1000):
        async with redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                part = keys.partition_of(account_id)
                pipe.hgetall(keys.account(account_id))
                pipe.zscore(keys.index(part), account_id)
                pipe.zscore(keys.index(part, "reauth_required"), account_id)
                pipe.zscore(keys.schedule(part), account_id)
            rows = await pipe.execute()
        for n, account_id in enumerate(ids):
            fields, *entries = rows[4 * n : 4 * n + 4]
            record = opened(fields, f"acct:{account_id}", ACCOUNT_FIELDS)
            state["accounts"][account_id] = (record, [e is not None for e in entries])
    for part in range(keys.partitions):
        state["appcount"].update(await redis.hgetall(keys.app_counts(part)))
    return state


def opened(fields: dict[str, str], name: str, sealed: tuple[str, ...]) -> dict[str, str]:
    """The record with its sealed fields decrypted (so that re-encryption compares equal)."""
    return {k: CIPHER.decrypt(v, f"{name}:{k}") if k in sealed else v for k, v in fields.items()}


@pytest.mark.timeout(180)
async def test_round_trip_of_10000_accounts(
    tb: Cli, core: Core, redis: Redis, tmp_path: Path
) -> None:
    """Export, wipe, import: the same records, indexes and schedule; old-key values re-encrypted."""
    apps = [await make_app(core), await make_app(core, "outlook")]
    await make_accounts(core, apps[0], COUNT - 100)
    await make_accounts(core, apps[1], 100, first=COUNT - 100)
    await seal_under(redis, core.keys, OLD_KEY, CIPHER, [f"acct{n}" for n in range(100, 150)])
    before = await snapshot(redis, core.keys)
    assert len(before["accounts"]) == COUNT and before["appcount"] == {
        "gmail": str(COUNT - 100),
        "outlook": "100",
    }
    started = time.perf_counter()
    exported = await tb("export", "backup.jsonl")
    export_s = time.perf_counter() - started
    assert exported.code == 0, exported.stderr
    assert f"exported 2 apps and {COUNT} accounts" in exported.stdout
    assert (
        "90 re-encrypted" in exported.stdout
    )  # 50 refresh + 40 access tokens and "export [" in exported.stderr
    await redis.flushall()
    started = time.perf_counter()
    imported = await tb("import", "backup.jsonl")
    import_s = time.perf_counter() - started
    assert imported.code == 0, imported.stderr
    assert f"imported 2 apps and {COUNT} accounts" in imported.stdout
    print(
        f"export {export_s:.2f} s, import {import_s:.2f} s of {COUNT} accounts, "
        f"file {(tmp_path / 'backup.jsonl').stat().st_size / 1e6:.1f} MB"
    )
    assert export_s + import_s < 60
    assert await snapshot(redis, core.keys) == before
    status = await tb("keys", "status", "--json")
    rows = {r["keyId"]: r["values"] for r in orjson.loads(status.stdout)["keys"]}
    assert rows[key_id(OLD_KEY)] == 0 and rows[key_id(TEST_SECRET)] > 2 * COUNT * 0.8
    for secret in ("refresh-1", "access-2", "gmail-secret"):
        assert secret.encode() not in (tmp_path / "backup.jsonl").read_bytes()


async def test_export_is_atomic_and_streams(tb: Cli, core: Core, tmp_path: Path) -> None:
    """The file appears only when complete (mode 0600); a key that opens nothing fails cleanly."""
    await make_accounts(core, await make_app(core), 30)
    done = await tb("export", "out.jsonl", "--batch", "7")
    assert done.code == 0, done.stderr
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    kinds = [orjson.loads(line)["type"] for line in lines]
    assert kinds == ["header", "app"] + ["account"] * 30 + ["end"]
    assert (tmp_path / "out.jsonl").stat().st_mode & 0o777 == 0o600
    other = base64.b64encode(OLD_KEY).decode()
    refused = await tb("export", "fail.jsonl", TOKENBROKER_SECRET=other, TOKENBROKER_OLD_SECRETS="")
    assert refused.code == 1 and "does not decrypt with any configured key" in refused.stderr
    assert not (tmp_path / "fail.jsonl").exists() and not (tmp_path / "fail.jsonl.partial").exists()


Mangle = Callable[[list[bytes]], list[bytes]]


def with_unknown_field(lines: list[bytes]) -> list[bytes]:
    """The third line (an account) with a field the account record does not have."""
    entry = orjson.loads(lines[2])
    entry["record"]["bogus"] = "1"
    return [*lines[:2], orjson.dumps(entry), *lines[3:]]


@pytest.mark.parametrize(
    ("mangle", "says"),
    [
        (lambda lines: lines[:-1], "truncated"),
        (lambda lines: lines[1:], "line 1: not a tokenbroker export"),
        (lambda lines: [*lines[:3], b"{bad json", *lines[3:]], "line 4:"),
        (lambda lines: [*lines[:-1], b'{"type":"end","apps":1,"accounts":99}'], "end line counts"),
        (with_unknown_field, "unknown fields bogus"),
    ],
    ids=["truncated", "no-header", "bad-json", "wrong-count", "unknown-field"],
)
async def test_import_refuses_a_damaged_file(
    tb: Cli, core: Core, tmp_path: Path, mangle: Mangle, says: str
) -> None:
    """A truncated or damaged file is refused with the line that is wrong, never silently."""
    await make_accounts(core, await make_app(core), 5)
    assert (await tb("export", "good.jsonl")).code == 0
    lines = (tmp_path / "good.jsonl").read_bytes().splitlines()
    (tmp_path / "bad.jsonl").write_bytes(b"\n".join(mangle(lines)) + b"\n")
    result = await tb("import", "bad.jsonl")
    assert result.code == 1 and says in result.stderr and "Traceback" not in result.stderr


async def test_import_restores_status_and_schedule(
    core: Core, redis: Redis, tmp_path: Path
) -> None:
    """A re-imported account replaces the stored one: status, indexes, schedule, deadline."""
    app = await make_app(core)
    await make_accounts(core, app, 10)  # acct0 needs re-consent, the others are active
    record = await read_hash(redis, core.keys.account("acct1"))
    record |= {"account": "acct0", "status": "active", "grantDeadline": "1900000000000"}
    line = {"type": "account", "id": "acct0", "record": record}
    importer = Importer(
        redis, core.keys, core.scripts, core.cipher, SystemClock(), Timing(300, 86_400)
    )
    with pytest.raises(BackupError, match=r"acct0.*does not decrypt"):
        await importer.restore(iter_lines(line))  # acct1's tokens are bound to acct1
    for name in ACCOUNT_FIELDS:
        record.pop(name, None)
    await importer.restore(iter_lines(line))
    part = core.keys.partition_of("acct0")
    assert await core.accounts.index.with_status(["acct0"], "active") == ["acct0"]
    assert await redis.zscore(core.keys.index(part, "reauth_required"), "acct0") is None
    assert await redis.zscore(core.keys.schedule(part), "acct0") is not None
    assert await redis.hget(core.keys.app_counts(part), app) == "10"
    assert await redis.zscore(core.keys.grant_deadlines(part), "acct0") == 1_900_000_000_000


def iter_lines(*entries: dict[str, Any]) -> Any:
    """A file of one header, the entries and a matching end line, as an iterator of lines."""
    import io

    header = {"type": "header", "format": "tokenbroker-export", "version": 1}
    end = {"type": "end", "apps": 0, "accounts": len(entries)}
    return io.BytesIO(b"".join(orjson.dumps(e) + b"\n" for e in (header, *entries, end)))
