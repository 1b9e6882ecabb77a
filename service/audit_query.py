"""Reading the audit trail: filters, newest first, paged by a cursor across partitions.

A stream entry holds the records of one flush, oldest first (service/audit.py). A record's
position is (entry time, entry sequence, partition, index in the entry); the partitions are
merged in that order, newest first. A cursor names the last record a page showed; the next
page holds what is strictly older. Each partition is read up to a scan budget, so that a rare
filter cannot make one request read everything: a page may then hold fewer records than
asked, and its cursor goes on from where the reading stopped. The time filter is on the
records' own times; an entry is never older than its records, so `from` bounds the reading.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from service import errors
from service.audit import partition_of
from service.clock import iso
from service.store.keys import Keys

BATCH = 20  # entries per XREVRANGE (each up to a flush's records)
SCAN_BUDGET = 5_000  # records one partition reads for one page at most
CURSOR = re.compile(r"(\d{1,15})-(\d{1,20})-(\d{1,4})-(\d{1,9})")
Position = tuple[int, int, int, int]  # (ms, seq, partition, index): the merge order
SEQ_MAX = 2**64 - 1  # the largest sequence number of a stream entry id


@dataclass(frozen=True)
class AuditFilter:
    """What a reader asks for; None matches anything. Times are epoch ms, both inclusive."""

    account: str | None = None
    api_token: str | None = None
    action: str | None = None
    from_ms: int | None = None
    to_ms: int | None = None

    def matches(self, record: dict[str, Any]) -> bool:
        """True when the record passes every filter."""
        at = record.get("at", 0)
        return (
            (self.account is None or record.get("account") == self.account)
            and (self.api_token is None or record.get("apiToken") == self.api_token)
            and (self.action is None or record.get("action") == self.action)
            and (self.from_ms is None or at >= self.from_ms)
            and (self.to_ms is None or at <= self.to_ms)
        )


@dataclass
class AuditPage:
    """One page: records newest first, and the cursor of the next page (None: no more)."""

    records: list[dict[str, Any]] = field(default_factory=list)
    cursor: str | None = None


def parse_cursor(text: str) -> Position:
    """A cursor from a previous page; 400 InvalidCursor for anything else."""
    found = CURSOR.fullmatch(text)
    if found is None:
        raise errors.InvalidCursor("cursor must be the `next` value of a previous page")
    ms, seq, partition, index = (int(part) for part in found.groups())
    return ms, seq, partition, index


def cursor_text(position: Position) -> str:
    """The cursor text of a position."""
    return "-".join(str(part) for part in position)


@dataclass(frozen=True)
class _Scan:
    found: list[tuple[Position, dict[str, Any]]]
    stopped_at: Position | None  # the last entry read when the budget ran out, else None


class AuditReader:
    """Reads the audit streams of `partitions` partitions."""

    def __init__(
        self, redis: Redis, keys: Keys, partitions: int, budget: int = SCAN_BUDGET
    ) -> None:
        self.redis, self.keys, self.partitions, self.budget = redis, keys, partitions, budget

    def _partitions_of(self, flt: AuditFilter) -> list[int]:
        """Every partition; only the account's own when the filter names an account."""
        if flt.account is not None:
            return [partition_of(flt.account, self.partitions)]
        return list(range(self.partitions))

    async def page(
        self, flt: AuditFilter, limit: int, cursor: Position | None, oldest_ms: int
    ) -> AuditPage:
        """Up to `limit` records matching `flt`, older than `cursor`, not older than `oldest_ms`."""
        scans = [
            await self._scan(p, flt, limit, cursor, oldest_ms) for p in self._partitions_of(flt)
        ]
        frontier = max((s.stopped_at for s in scans if s.stopped_at is not None), default=None)
        merged = sorted((item for s in scans for item in s.found), key=lambda i: i[0])[::-1]
        if frontier is not None:
            merged = [item for item in merged if item[0] >= frontier]  # read down to it
        shown = merged[:limit]
        page = AuditPage([_public(position, record) for position, record in shown])
        if len(shown) == limit:
            page.cursor = cursor_text(shown[-1][0])
        elif frontier is not None:
            page.cursor = cursor_text(frontier)
        return page

    async def _scan(
        self,
        partition: int,
        flt: AuditFilter,
        limit: int,
        cursor: Position | None,
        oldest_ms: int,
    ) -> _Scan:
        key = self.keys.audit(partition)
        high: str | None = _upper(partition, cursor)
        low = str(max(oldest_ms, flt.from_ms or 0))
        found: list[tuple[Position, dict[str, Any]]] = []
        read, last = 0, (0, 0, partition, 0)
        while high is not None and len(found) < limit:
            if read >= self.budget:
                return _Scan(found, last)
            answer = await self.redis.xrevrange(key, max=high, min=low, count=BATCH)
            entries = cast(list[tuple[str, dict[str, str]]], answer)
            for entry_id, fields in entries:
                ms, seq, _, _ = last = _position(entry_id, partition, 0)
                records = orjson.loads(fields["r"])
                read += len(records)
                for index in range(len(records) - 1, -1, -1):
                    position = (ms, seq, partition, index)
                    if (cursor is None or position < cursor) and flt.matches(records[index]):
                        found.append((position, records[index]))
            high = f"({entries[-1][0]}" if len(entries) == BATCH else None
        return _Scan(found, None)


def _upper(partition: int, cursor: Position | None) -> str | None:
    """The XREVRANGE max of a partition: the cursor's entry (in merge order) and below.

    None when nothing can be older (an exclusive bound below 0-0).
    """
    if cursor is None:
        return "+"
    ms, seq, cursor_partition, _ = cursor
    seq = min(seq, SEQ_MAX)  # a cursor no page handed out may overflow an entry id
    # the cursor's own entry, and equal ids of lower partitions, still hold older records
    if partition <= cursor_partition:
        return f"{ms}-{seq}"
    return f"({ms}-{seq}" if (ms, seq) > (0, 0) else None


def _position(entry_id: str, partition: int, index: int) -> Position:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq), partition, index


def _public(position: Position, record: dict[str, Any]) -> dict[str, Any]:
    """A record as the API and the page show it: its cursor id and time first."""
    at = record.pop("at", position[0])
    return {"id": cursor_text(position), "time": iso(at), **record}
