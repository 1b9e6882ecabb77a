"""The refresh schedule: per-partition sorted sets of due times, claimed under leases."""

from __future__ import annotations

import secrets

from redis.asyncio import Redis

from service.store.keys import Keys
from service.store.scripts import Scripts


class Schedule:
    """Claims due accounts and moves them in time; every member is an account id."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis, self.keys, self.scripts = redis, keys, scripts

    async def claim(
        self, partition: int, now_ms: int, lease_ms: int, limit: int, claim_id: str | None = None
    ) -> list[tuple[str, int]]:
        """Claim up to `limit` due accounts of a partition; returns (account, due ms).

        With a `claim_id` the claim is recorded for the lease: calling again with the same id
        (after a lost reply) returns the same accounts instead of claiming others. Without
        one, a lost reply leaves its accounts parked until the lease passes.
        """
        keys = [self.keys.schedule(partition)]
        if claim_id is not None:
            keys.append(self.keys.claim(partition, claim_id))
        flat = await self.scripts.run("schedule_claim", keys, [now_ms, lease_ms, limit])
        return [(str(flat[i]), int(float(flat[i + 1]))) for i in range(0, len(flat), 2)]

    async def move(self, account: str, due_ms: int) -> None:
        """Set the account's due time, only if it is still scheduled (never resurrects)."""
        part = self.keys.partition_of(account)
        await self.redis.zadd(self.keys.schedule(part), {account: due_ms}, xx=True)

    async def remove(self, account: str) -> None:
        """Drop an account from the schedule (a member without a record)."""
        await self.redis.zrem(self.keys.schedule(self.keys.partition_of(account)), account)

    async def depth(self, now_ms: int) -> tuple[int, int]:
        """Return (scheduled accounts, of which overdue) over every partition."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in range(self.keys.partitions):
                pipe.zcard(self.keys.schedule(part))
                pipe.zcount(self.keys.schedule(part), "-inf", now_ms)
            rows = await pipe.execute()
        return sum(rows[0::2]), sum(rows[1::2])


def new_claim_id() -> str:
    """A random id for one claim call, kept while that call is retried."""
    return secrets.token_hex(8)
