"""`make bench`: Redis memory per account, with Redis' default hash encoding and with ours.

N accounts (Google-like: a 100-character refresh token, a 185-character access token, the
app's scopes) are saved through AccountStore.save into two private redis-servers side by
side: one with Redis' defaults, one with the settings tokenbroker ships (deploy/redis.conf,
applied to the embedded Redis too). Printed: bytes per account in all (used_memory after
minus before, over N) and beyond its own token ciphertext (the sealed fields' lengths), then
per structure (MEMORY USAGE of the account hash and of each partition key, over N; the rest
is the keyspace's own table and allocator rounding MEMORY USAGE does not see).
`--accounts N` for a quicker run (at least 1,000).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from redis.asyncio import Redis

from service.account_record import SEALED_FIELDS
from service.accounts import AccountWrite
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core, build_core
from service.store.connection import create_redis
from service.store.embedded import HASH_SETTINGS, RedisProcess
from service.store.keys import Keys
from tests.support.bench import accounts_main

ACCOUNTS = 100_000
TARGET_BEYOND = 1_000  # bytes per account beyond its own tokens
BATCH = 50  # saves in flight at once (the client pool is bounded)
SECRET = bytes(range(32))


def token(n: int, size: int) -> str:
    """A token-like string of `size` characters, different per account."""
    return (f"{n:08d}" + os.urandom(size).hex())[:size]


@dataclass(frozen=True)
class Measured:
    """Bytes per account: in all, of which token ciphertext, and per structure."""

    total: float
    sealed: float
    parts: dict[str, float]


async def fill(url: str, count: int) -> Measured:
    """Save `count` accounts; measure what they cost."""
    config = Config(redis_url=url, secret_key=SECRET, base_url="http://127.0.0.1:8080")
    redis = create_redis(config)
    raw = Redis.from_url(url, decode_responses=True)
    try:
        core = build_core(config, redis, None, SystemClock())  # type: ignore[arg-type]
        app = {
            "id": "gmail-like",
            "provider": "oidc",
            "clientId": "c",
            "clientSecret": "s",
            "tokenUrl": "https://oauth2.example.com/token",
        }
        await core.apps.create(app, iso(core.clock.now_ms()))
        before = int((await raw.info("memory"))["used_memory"])
        await save_all(core, count)
        after = int((await raw.info("memory"))["used_memory"])
        sample = [f"acct{n:07d}" for n in range(0, count, max(1, count // 1000))]
        async with raw.pipeline(transaction=False) as pipe:
            for account_id in sample:
                pipe.hmget(core.keys.account(account_id), list(SEALED_FIELDS))
            rows = await pipe.execute()
        sealed = sum(len(v) for row in rows for v in row if v) / len(rows)
        parts = await breakdown(raw, core.keys, sample, count)
        return Measured((after - before) / count, sealed, parts)
    finally:
        await redis.aclose()
        await raw.aclose()


async def save_all(core: Core, count: int) -> None:
    """Save the accounts through AccountStore.save, BATCH at a time."""
    now = core.clock.now_ms()
    for start in range(0, count, BATCH):
        writes = []
        for n in range(start, min(start + BATCH, count)):
            write = AccountWrite(
                app="gmail-like",
                provider="oidc",
                user=f"user{n}@example.com",
                access_token=token(n, 185),
                refresh_token=token(n, 100),
                expires_at_ms=now + 3_600_000,
                lifetime_ms=3_600_000,
                scopes=["https://mail.google.com/", "openid", "email", "profile"],
            )
            writes.append((f"acct{n:07d}", write))
        results = await asyncio.gather(
            *(core.accounts.save(a, w, now + 3_000_000, now, {}) for a, w in writes)
        )
        assert len(results) == len(writes)


async def breakdown(raw: Redis, keys: Keys, sample: list[str], count: int) -> dict[str, float]:
    """MEMORY USAGE per account of each structure.

    The account hash: the mean of a sample, its key included; each partition key (idx:all,
    idx:search, sched, ...): summed over the partitions.
    """
    async with raw.pipeline(transaction=False) as pipe:
        for account_id in sample:
            pipe.memory_usage(keys.account(account_id), samples=0)
        hashes = await pipe.execute()
    parts = {"account hash": sum(hashes) / len(hashes)}
    async for key in raw.scan_iter(match=f"{keys.prefix}:{{p*}}:*", count=1000):
        if keys.account_id_of(key) is not None:
            continue
        name = key.partition("}:")[2]
        used = int(await raw.memory_usage(key, samples=0) or 0)
        parts[name] = parts.get(name, 0.0) + used / count
    return parts


def run(stack: contextlib.ExitStack, count: int) -> str:
    """Both servers, side by side; the report."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenbroker-mem-")))
    default = RedisProcess(tmp / "default", tuned=False)
    tuned = RedisProcess(tmp / "tuned")
    for server in (default, tuned):
        server.start()
        stack.callback(server.stop)
    plain = asyncio.run(fill(default.url, count)).total
    ours = asyncio.run(fill(tuned.url, count))
    beyond = ours.total - ours.sealed
    verdict = "PASS" if beyond <= TARGET_BEYOND else "MISS"
    settings = " ".join(f"{k} {v}" for k, v in HASH_SETTINGS)
    lines = [
        f"Redis memory per account, {count:,} accounts ({settings} vs Redis defaults)",
        f"{'':40}{'measured':>10}{'target':>10}",
        f"{'bytes/account, Redis defaults':40}{plain:>10,.0f}",
        f"{'bytes/account, tokenbroker settings':40}{ours.total:>10,.0f}",
        f"{'  of which token ciphertext':40}{ours.sealed:>10,.0f}",
        f"{'  beyond its own tokens':40}{beyond:>10,.0f}{TARGET_BEYOND:>10,}  {verdict}",
        f"{'ratio ours/defaults':40}{ours.total / plain:>10.2f}",
        "per structure, tokenbroker settings (MEMORY USAGE / accounts):",
    ]
    for name, used in sorted(ours.parts.items(), key=lambda item: -item[1]):
        if used >= 0.5:
            lines.append(f"{'  ' + name:40}{used:>10,.0f}")
    rest = ours.total - sum(ours.parts.values())
    lines.append(f"{'  rest (keyspace table, allocator)':40}{rest:>10,.0f}")
    return "\n".join(lines)


def main() -> int:
    """Run the benchmark; exit 0 with the report, non-zero on any setup error."""
    return accounts_main(__doc__, ACCOUNTS, run)


if __name__ == "__main__":
    sys.exit(main())
