"""The audit trail: who obtained which account's token, and what operators changed.

Records go to per-partition capped Redis streams (Keys.audit; the partition is crc32 of the
account, else of the actor, mod TOKENBROKER_AUDIT_PARTITIONS), one entry per partition and
flush holding that flush's records as a JSON array (oldest first; the entry id is the newest
record's time), trimmed by age (XTRIM MINID) and length (MAXLEN ~, in entries) in the script
that appends them, and out as one `audit` log line each for a SIEM. Token answers are
buffered in the process as tuples and turned into records, logged and written in batches by
a background task (AuditTrail.run), one pipeline per flush: the token endpoint never waits on
Redis for them. Operator actions are written at once. A record is built only from ids, names,
addresses and outcomes: it never holds a token, secret, password or key.
"""

from __future__ import annotations

import asyncio
import contextlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import logs
from service.clock import Clock
from service.config import Config
from service.store.connection import STORE_ERRORS
from service.store.keys import Keys
from service.store.scripts import Scripts

log = structlog.get_logger("audit")  # the trail's own troubles; records: logs.audit_lines
TOKEN_ISSUED = "token.issued"  # noqa: S105 - the action of a token answer, not a secret
FLUSH_BATCH = 500  # buffered records that wake the flusher before its interval
BUFFER_MAX = 100_000  # records kept for a retry while Redis is down; older ones are dropped
DAY_MS = 86_400_000
Record = dict[str, Any]
# at, account, API token id, its description, client, request id, source, resource
Answer = tuple[int, str, str, str | None, str, str, str, str | None]


@dataclass(frozen=True)
class AuditCounters:
    """Hooks the process's metrics plug in: records written, failed flushes, dropped records."""

    written: Callable[[int], None] = lambda n: None
    failed: Callable[[int], None] = lambda n: None
    dropped: Callable[[int], None] = lambda n: None


def clean(record: Record) -> Record:
    """The record without its empty fields."""
    return {name: value for name, value in record.items() if value is not None and value != ""}


def partition_of(owner: str, partitions: int) -> int:
    """The audit partition of a record owned by `owner` (its account, else its actor)."""
    return zlib.crc32(owner.encode()) % partitions


class AuditTrail:
    """Buffers, writes and logs audit records of one process."""

    def __init__(
        self, redis: Redis, keys: Keys, scripts: Scripts, clock: Clock, config: Config
    ) -> None:
        self.redis, self.keys, self.scripts, self.clock = redis, keys, scripts, clock
        self.enabled = config.audit_enabled
        self.partitions = config.audit_partitions
        self.retention_ms = config.audit_retention_days * DAY_MS
        self.max_len = config.audit_max_len
        self.flush_s = config.audit_flush_ms / 1000
        self.counters = AuditCounters()
        self._answers: list[Answer] = []  # token answers, as cheap tuples until the flush
        self._actions: list[Record] = []  # operator actions not yet logged nor written
        self._unwritten: list[Record] = []  # logged; written at the next flush that works
        self._wake = asyncio.Event()

    def partition_of(self, record: Record) -> int:
        """The record's partition: by its account, else by its actor."""
        owner = record.get("account") or record.get("actor") or ""
        return partition_of(str(owner), self.partitions)

    def token_answer(
        self,
        *,
        account: str,
        api_token: tuple[str, str | None],
        client: str,
        request_id: str,
        source: str,
        resource: str | None = None,
    ) -> None:
        """Buffer the record of one token answer (no await: the hot path appends a tuple).

        `api_token` is the caller's token id and description; `source` is `cache`,
        `refresh` or `refresh_failed` (a stored token served after a failed refresh).
        """
        if not self.enabled:
            return
        answers = self._answers
        answers.append(
            (self.clock.now_ms(), account, *api_token, client, request_id, source, resource)
        )
        if len(answers) >= FLUSH_BATCH:
            self._wake.set()

    async def action(self, record: Record) -> None:
        """Log and write one operator action now (a store failure is counted, and retried)."""
        if not self.enabled:
            return
        self._actions.append(clean({"at": self.clock.now_ms(), **record}))
        await self.flush()

    def _take_fresh(self) -> list[Record]:
        answers, self._answers = self._answers, []
        actions, self._actions = self._actions, []
        return [*map(answer_record, answers), *actions]

    async def flush(self) -> bool:
        """Log the records buffered since the last flush and write every unwritten one.

        One pipeline per flush (one stream entry per partition); a store failure keeps the
        records for the next flush (up to BUFFER_MAX), is counted and logged, and never
        raises. Returns whether all were written.
        """
        fresh = self._take_fresh()
        if fresh:
            logs.audit_lines(fresh)
        batch = self._unwritten + fresh
        self._unwritten = []
        if not batch:
            return True
        try:
            await self._write(batch)
        except (*STORE_ERRORS, RedisError) as exc:  # a refusal (OOM, READONLY) too
            self._keep(batch)
            self.counters.failed(len(batch))
            log.warning("audit_flush_failed", records=len(batch), error=type(exc).__name__)
            return False
        self.counters.written(len(batch))
        return True

    def _keep(self, batch: list[Record]) -> None:
        overflow = len(batch) + len(self._unwritten) - BUFFER_MAX
        if overflow > 0:
            batch = batch[overflow:]
            self.counters.dropped(overflow)
            log.error("audit_records_dropped", records=overflow)
        self._unwritten = batch + self._unwritten

    async def _write(self, batch: list[Record]) -> None:
        """One entry per partition: the partition's records of the batch, a JSON array."""
        by_partition: dict[int, list[Record]] = {}
        for record in batch:
            by_partition.setdefault(self.partition_of(record), []).append(record)
        oldest = self.clock.now_ms() - self.retention_ms
        async with self.redis.pipeline(transaction=False) as pipe:
            for partition, records in by_partition.items():
                newest = max(record["at"] for record in records)
                keys = [self.keys.audit(partition)]
                args = [oldest, self.max_len, newest, orjson.dumps(records)]
                await self.scripts.queue(pipe, "audit_append", keys, args)
            await pipe.execute()

    async def run(self) -> None:
        """Flush every interval, or sooner when a batch is full; until cancelled."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.flush_s)
            self._wake.clear()
            await self.flush()

    @property
    def pending(self) -> int:
        """Records not yet written to Redis."""
        return len(self._answers) + len(self._actions) + len(self._unwritten)


def answer_record(answer: Answer) -> Record:
    """The record of a buffered token answer."""
    at, account, token_id, description, client, request_id, source, resource = answer
    record: Record = {
        "at": at,
        "action": TOKEN_ISSUED,
        "account": account,
        "actor": f"apitoken:{token_id}",
        "apiToken": token_id,
        "client": client,
        "requestId": request_id,
        "source": source,
    }
    if description:
        record["apiTokenDescription"] = description
    if resource:
        record["resource"] = resource
    return record
