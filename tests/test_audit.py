"""The audit trail's writer: batches, partitions, retention, a store outage during a flush."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis

from service.audit import DAY_MS, TOKEN_ISSUED, AuditCounters, AuditTrail, partition_of
from service.audit_query import AuditFilter, AuditReader, parse_cursor
from service.clock import ManualClock, SystemClock
from service.config import Config
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from service.store.keys import Keys
from service.store.scripts import Scripts
from tests.support.logs import logged_lines

START_MS = 1_800_000_000_000


@dataclasses.dataclass
class Counts:
    """What the trail reported through its counters."""

    written: int = 0
    failed: int = 0
    dropped: int = 0

    def counters(self) -> AuditCounters:
        """Counters that add up here."""
        return AuditCounters(
            written=lambda n: setattr(self, "written", self.written + n),
            failed=lambda n: setattr(self, "failed", self.failed + n),
            dropped=lambda n: setattr(self, "dropped", self.dropped + n),
        )


def trail_of(redis: Redis, config: Config, clock: ManualClock) -> tuple[AuditTrail, Counts]:
    """An AuditTrail on `redis` with counters to look at."""
    trail = AuditTrail(redis, Keys(), Scripts(redis), clock, config)
    counts = Counts()
    trail.counters = counts.counters()
    return trail, counts


def answer(trail: AuditTrail, account: str, source: str = "cache") -> None:
    """Buffer one token answer for `account` (a graph token for account `acct-3`)."""
    trail.token_answer(
        account=account,
        api_token=("tok1", "reader"),
        client="192.0.2.7",
        request_id="req-1",
        source=source,
        resource="graph" if account == "acct-3" else None,
    )


async def entries(redis: Redis, key: str) -> list[tuple[str, dict[str, str]]]:
    """Every entry of a stream, oldest first (id, fields)."""
    return cast(list[tuple[str, dict[str, str]]], await redis.xrange(key))


async def stream_ids(redis: Redis, config: Config) -> list[str]:
    """Every entry id of every audit partition."""
    ids: list[str] = []
    for partition in range(config.audit_partitions):
        ids += [entry_id for entry_id, _ in await entries(redis, Keys().audit(partition))]
    return ids


async def test_answers_wait_for_the_flush_then_go_in_one_pipeline(
    redis: Redis, config: Config
) -> None:
    """Token answers are only buffered until a flush writes them, each to its partition."""
    trail, counts = trail_of(redis, config, ManualClock(START_MS))
    for n in range(10):
        answer(trail, f"acct-{n}")
    assert await stream_ids(redis, config) == [] and trail.pending == 10
    with logged_lines() as lines:
        assert await trail.flush() is True
    assert counts.written == 10 and trail.pending == 0
    logged = lines.events("audit")
    assert len(logged) == 10 and logged[0]["logger"] == "audit"
    assert logged[0]["action"] == TOKEN_ISSUED and logged[0]["apiToken"] == "tok1"
    assert [line.get("resource") for line in logged].count("graph") == 1
    for n in range(10):
        key = Keys().audit(partition_of(f"acct-{n}", config.audit_partitions))
        found = await entries(redis, key)
        assert any(f'"acct-{n}"' in fields["r"] for _, fields in found)


async def test_partition_keys_have_their_own_hash_tags() -> None:
    """Each audit partition's key has a hash tag of its own (Redis Cluster spreads them)."""
    keys = Keys("tb")
    tags = {keys.audit(p).split("{")[1].split("}")[0] for p in range(8)}
    assert len(tags) == 8


async def test_retention_trims_records_older_than_the_window(redis: Redis, config: Config) -> None:
    """A flush after the retention window has passed (injected clock) trims older records."""
    cfg = dataclasses.replace(config, audit_partitions=1, audit_retention_days=30)
    clock = ManualClock(START_MS)
    trail, _ = trail_of(redis, cfg, clock)
    answer(trail, "old")
    await trail.flush()
    clock.advance(29 * DAY_MS)
    answer(trail, "recent")
    await trail.flush()
    assert len(await stream_ids(redis, cfg)) == 2
    clock.advance(2 * DAY_MS)  # "old" is now 31 days old, "recent" 2
    answer(trail, "new")
    await trail.flush()
    left = [fields["r"] for _, fields in await entries(redis, Keys().audit(0))]
    assert len(left) == 2 and '"old"' not in left[0] and '"recent"' in left[0]
    reader = AuditReader(redis, Keys(), 1)
    page = await reader.page(AuditFilter(), 10, None, clock.now_ms() - trail.retention_ms)
    assert [r["account"] for r in page.records] == ["new", "recent"]


async def test_a_clock_behind_the_stream_still_appends(redis: Redis, config: Config) -> None:
    """A record timed before the stream's last entry (another process's clock) is kept."""
    cfg = dataclasses.replace(config, audit_partitions=1)
    clock = ManualClock(SystemClock().now_ms())
    trail, counts = trail_of(redis, cfg, clock)
    answer(trail, "ahead")
    await trail.flush()
    clock.advance(-60_000)
    answer(trail, "behind")
    assert await trail.flush() is True
    assert counts.written == 2 and len(await stream_ids(redis, cfg)) == 2


async def test_off_records_nothing(redis: Redis, config: Config) -> None:
    """TOKENBROKER_AUDIT=off: nothing is buffered, written or logged."""
    trail, _ = trail_of(redis, dataclasses.replace(config, audit_enabled=False), ManualClock(1))
    answer(trail, "a")
    await trail.action({"action": "app.create", "app": "x"})
    assert trail.pending == 0 and await stream_ids(redis, config) == []


@pytest.fixture
async def own_store(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private redis-server (the shared one is never stopped), stopped at the end."""
    server = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


async def test_store_down_during_flush_is_survived_counted_and_retried(
    own_store: RedisProcess, config: Config
) -> None:
    """A flush while Redis is down neither raises nor loses records: counted, logged, retried."""
    cfg = dataclasses.replace(config, redis_url=own_store.url, redis_timeout_s=0.3)
    redis = create_redis(cfg)
    try:
        trail, counts = trail_of(redis, cfg, ManualClock(SystemClock().now_ms()))
        answer(trail, "during-outage")
        await asyncio.to_thread(own_store.stop)
        with logged_lines() as lines:
            assert await trail.flush() is False
        assert counts.failed == 1 and counts.written == 0 and trail.pending == 1
        assert lines.events("audit_flush_failed"), lines.text
        assert lines.events("audit"), lines.text  # the SIEM line went out anyway
        await asyncio.to_thread(own_store.start)
        with logged_lines() as again:
            assert await trail.flush() is True
        assert not again.events("audit")  # logged once only
        assert counts.written == 1 and trail.pending == 0
        assert len(await stream_ids(redis, cfg)) == 1
    finally:
        await redis.aclose()


async def test_a_rare_filter_pages_through_the_scan_budget(redis: Redis, config: Config) -> None:
    """With a small scan budget, pages may come short but their cursors find every match once."""
    cfg = dataclasses.replace(config, audit_partitions=3)
    clock = ManualClock(START_MS)
    trail, _ = trail_of(redis, cfg, clock)
    for n in range(300):
        trail.token_answer(
            account=f"acct-{n % 7}",
            api_token=("rare" if n % 37 == 0 else "common", None),
            client="192.0.2.1",
            request_id=f"r{n}",
            source="cache",
        )
        clock.advance(1)
        if n % 25 == 24:
            await trail.flush()  # several entries per partition
    reader = AuditReader(redis, Keys(), 3, budget=40)
    seen: list[str] = []
    cursor = None
    for _ in range(100):
        page = await reader.page(AuditFilter(api_token="rare"), 3, cursor, 0)
        seen += [record["requestId"] for record in page.records]
        cursor = None if page.cursor is None else parse_cursor(page.cursor)
        if cursor is None:
            break
    assert seen == [f"r{n}" for n in reversed(range(0, 300, 37))]
