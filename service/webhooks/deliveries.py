"""Webhook deliveries: reading outbox streams through a consumer group, retries, dead letters."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.store.connection import read_hash
from service.store.keys import Keys
from service.store.scripts import Scripts

GROUP = "webhooks"
RECENT = 1000  # delivered summaries kept per outbox
STATUSES = ("pending", "failed", "delivered")


@dataclass
class Delivery:
    """One event on its way to the receiver."""

    outbox: str
    msg_id: str
    payload: str
    entry_id: str = ""  # set while the event is still an entry of the stream's group
    attempts: list[dict[str, Any]] = field(default_factory=list)
    first_ms: int | None = None


def _from_entry(outbox: str, entry_id: str, fields: dict[str, str]) -> Delivery:
    payload = fields.get("payload", "{}")
    msg_id = str(orjson.loads(payload).get("id", entry_id))
    return Delivery(outbox, msg_id, payload, entry_id=entry_id)


class Deliveries:
    """The delivery state of every outbox (each partition's stream and the global one)."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis, self.keys, self.scripts = redis, keys, scripts

    async def ensure_groups(self) -> None:
        """Create the consumer group on every outbox stream (from its first entry)."""
        for outbox in self.keys.outboxes():
            try:
                await self.redis.xgroup_create(
                    self.keys.outbox_stream(outbox), GROUP, id="0", mkstream=True
                )
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def read_new(self, outbox: str, consumer: str, count: int) -> list[Delivery]:
        """Events of the outbox no consumer has taken yet."""
        stream = self.keys.outbox_stream(outbox)
        reply = await self.redis.xreadgroup(GROUP, consumer, {stream: ">"}, count=count)
        rows = cast(list[tuple[str, list[tuple[str, dict[str, str]]]]], reply or [])
        return [_from_entry(outbox, eid, f) for _, entries in rows for eid, f in entries]

    async def reclaim(
        self, outbox: str, consumer: str, idle_ms: int, count: int, start: str = "0-0"
    ) -> tuple[list[Delivery], str]:
        """Events a consumer took but did not finish within `idle_ms` (it died, or crashed).

        Scans the pending list from `start`; returns the events and where the next scan
        goes on ("0-0" once the end was reached), so that entries behind many in-flight
        ones are reached too.
        """
        stream = self.keys.outbox_stream(outbox)
        reply = await self.redis.xautoclaim(stream, GROUP, consumer, idle_ms, start, count=count)
        entries = cast(list[tuple[str, dict[str, str] | None]], reply[1])
        return [_from_entry(outbox, eid, f) for eid, f in entries if f], str(reply[0])

    async def due_retries(
        self, outbox: str, now_ms: int, lease_ms: int, count: int
    ) -> list[Delivery]:
        """Claim failed events whose next attempt is due, under a lease."""
        flat = await self.scripts.run(
            "schedule_claim", [self.keys.webhook_retries(outbox)], [now_ms, lease_ms, count]
        )
        ids = [str(msg_id) for msg_id in flat[0::2]]
        if not ids:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for msg_id in ids:
                pipe.hgetall(self.keys.webhook_record(outbox, msg_id))
            records = cast(list[dict[str, str]], await pipe.execute())
        found, orphans = [], []
        for msg_id, record in zip(ids, records, strict=True):
            if not record:
                orphans.append(msg_id)
                continue
            attempts = orjson.loads(record.get("attempts", "[]"))
            first = int(record["first"]) if record.get("first") else None
            found.append(
                Delivery(outbox, msg_id, record["payload"], attempts=attempts, first_ms=first)
            )
        if orphans:  # a retry entry whose record is gone: nothing left to deliver
            await self.redis.zrem(self.keys.webhook_retries(outbox), *orphans)
        return found

    async def delivered(self, item: Delivery, summary: dict[str, Any]) -> None:
        """Mark the event delivered (one script: ack or drop the record, keep a summary)."""
        keys = [*self._keys(item), self.keys.webhook_done(item.outbox)]
        args = [GROUP, item.entry_id, item.msg_id, orjson.dumps(summary).decode(), RECENT]
        await self.scripts.run("webhook_delivered", keys, args)

    async def failed(self, item: Delivery, next_ms: int | None, now_ms: int) -> str:
        """Record a failed attempt (already in item.attempts); returns 'retry' or 'dead'."""
        args = [
            GROUP,
            item.entry_id,
            item.msg_id,
            item.payload,
            orjson.dumps(item.attempts).decode(),
            "" if next_ms is None else next_ms,
            now_ms,
        ]
        return str(await self.scripts.run("webhook_failed", self._keys(item), args))

    def _keys(self, item: Delivery) -> list[str]:
        o = item.outbox
        return [
            self.keys.outbox_stream(o),
            self.keys.webhook_record(o, item.msg_id),
            self.keys.webhook_retries(o),
            self.keys.webhook_dead(o),
        ]

    async def redeliver(self, msg_id: str, now_ms: int) -> bool:
        """Queue a dead letter again, due now; False when no dead letter has that id."""
        for o in self.keys.outboxes():
            keys = [
                self.keys.webhook_record(o, msg_id),
                self.keys.webhook_retries(o),
                self.keys.webhook_dead(o),
            ]
            if int(await self.scripts.run("webhook_redeliver", keys, [msg_id, now_ms])):
                return True
        return False

    async def trim(self, outbox: str) -> None:
        """Trim the stream below the oldest entry not yet delivered or moved to a record."""
        stream = self.keys.outbox_stream(outbox)
        pending = await self.redis.xpending(stream, GROUP)
        if pending["pending"]:
            floor = str(pending["min"])
        else:
            groups = await self.redis.xinfo_groups(stream)
            mine = [g for g in groups if g["name"] == GROUP]
            if not mine or mine[0]["last-delivered-id"] == "0-0":
                return
            floor = str(mine[0]["last-delivered-id"])
        await self.redis.xtrim(stream, minid=floor, approximate=False)

    async def backlog(self, now_ms: int) -> tuple[int, int]:
        """(events waiting for delivery, age in ms of the oldest), over every outbox."""
        waiting, oldest = 0, now_ms
        for o in self.keys.outboxes():
            stream = self.keys.outbox_stream(o)
            if await self.redis.exists(stream):
                for group in await self.redis.xinfo_groups(stream):
                    if group["name"] == GROUP:
                        waiting += int(group.get("lag") or 0) + int(group["pending"])
                        oldest = min(oldest, await self._oldest_waiting(stream, group, now_ms))
            retries = cast(list[str], await self.redis.zrange(self.keys.webhook_retries(o), 0, 0))
            waiting += await self.redis.zcard(self.keys.webhook_retries(o))
            if retries:
                record = await read_hash(self.redis, self.keys.webhook_record(o, retries[0]))
                oldest = min(oldest, int(record.get("first", now_ms)))
        return waiting, max(0, now_ms - oldest)

    async def _oldest_waiting(self, stream: str, group: dict[str, Any], now_ms: int) -> int:
        """When the stream's oldest undelivered entry was added: pending, or past the cursor.

        Entries up to the group's cursor that are not pending are delivered (or records now);
        trim() keeps the last of them, which must not count as waiting.
        """
        ids: list[str] = []
        if int(group["pending"]):
            ids.append(str((await self.redis.xpending(stream, GROUP))["min"]))
        cursor = str(group["last-delivered-id"])
        unread = await self.redis.xrange(stream, min=f"({cursor}", count=1)
        ids += [str(unread[0][0])] if unread else []
        return min((int(i.split("-")[0]) for i in ids), default=now_ms)

    async def dead_count(self) -> int:
        """How many dead letters wait for an operator, over every outbox."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for o in self.keys.outboxes():
                pipe.zcard(self.keys.webhook_dead(o))
            return sum(await pipe.execute())

    async def list(self, status: str, limit: int) -> list[dict[str, Any]]:
        """Recent deliveries with one status: pending (retrying), failed (dead) or delivered."""
        items: list[dict[str, Any]] = []
        for o in self.keys.outboxes():
            if status == "delivered":
                rows = await self.redis.lrange(self.keys.webhook_done(o), 0, limit - 1)
                items += [orjson.loads(row) for row in rows]
                continue
            zset = (
                self.keys.webhook_retries(o) if status == "pending" else self.keys.webhook_dead(o)
            )
            for msg_id in cast(list[str], await self.redis.zrange(zset, 0, limit - 1)):
                record = await read_hash(self.redis, self.keys.webhook_record(o, msg_id))
                if record:
                    items.append(summary_of_record(msg_id, record))
        items.sort(key=lambda item: str(item.get("date", "")), reverse=True)
        return items[:limit]


def summary_of_record(msg_id: str, record: dict[str, str]) -> dict[str, Any]:
    """A retrying or dead event as the deliveries API shows it."""
    payload = orjson.loads(record["payload"])
    attempts = orjson.loads(record.get("attempts", "[]"))
    return {
        "id": msg_id,
        "event": payload.get("event"),
        "account": payload.get("account"),
        "app": payload.get("app"),
        "date": payload.get("date"),
        "status": record.get("status"),
        "attempts": attempts,
    }
