"""Accounts by status: pages and counts, the active ones derived as all minus the others.

Each partition keeps `idx:all` (every account id, score 0, ordered by id) and one index per
status other than active (`idx:reauth_required`). Few accounts are not active, and every
index entry of a large sorted set costs ~120 bytes of Redis memory, so active accounts have
no index of their own: an active account is one of `all` that no other status's index holds.
A page of active accounts reads `all` from its start, as a page of any status does, plus the
other statuses' entries among what it read (ZMSCORE); the counts are ZCARDs.
"""

from __future__ import annotations

import heapq
from typing import cast

from redis.asyncio import Redis

from service.account_record import STATUSES, Status
from service.store.keys import Keys

OTHERS = tuple(s for s in STATUSES if s != Status.ACTIVE)  # the statuses with an index
MAX_CHUNK = 10_000  # ids read from `all` at once while collecting active ones


class AccountIndex:
    """Reads the status indexes (the account scripts write them)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys

    async def counts(self) -> list[dict[str, int]]:
        """Each partition's {status: count}, active included, read in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in range(self.keys.partitions):
                pipe.zcard(self.keys.index(part))
                for status in OTHERS:
                    pipe.zcard(self.keys.index(part, status))
            cards = [int(n) for n in await pipe.execute()]
        per, found = 1 + len(OTHERS), []
        for at in range(0, len(cards), per):
            total, rest = cards[at], cards[at + 1 : at + per]
            counts = dict(zip(OTHERS, rest, strict=True))
            found.append({Status.ACTIVE.value: total - sum(rest), **counts})
        return found

    async def count_by_status(self) -> dict[str, int]:
        """How many accounts have each status, summed over partitions."""
        per_part = await self.counts()
        return {status: sum(counts[status] for counts in per_part) for status in STATUSES}

    async def page(self, page: int, size: int, status: str = "all") -> tuple[int, list[str]]:
        """(total, ids of the page) with that status ("all": any), ordered by id."""
        need = (page + 1) * size
        if status == Status.ACTIVE:
            per_part = await self.counts()
            rows = [await self._active(part, need, c) for part, c in enumerate(per_part)]
            total = sum(c[Status.ACTIVE] for c in per_part)
            return total, list(heapq.merge(*rows))[page * size : need]
        names = [self.keys.index(p, status) for p in range(self.keys.partitions)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(name)
                pipe.zrange(name, 0, need - 1)
            found = await pipe.execute()
        ids = [[_text(i) for i in row] for row in found[1::2]]
        return sum(found[0::2]), list(heapq.merge(*ids))[page * size : need]

    async def _active(self, part: int, need: int, counts: dict[str, int]) -> list[str]:
        """The first `need` active ids of a partition, in id order."""
        others = sum(n for s, n in counts.items() if s != Status.ACTIVE)
        found: list[str] = []
        start = 0
        while len(found) < need:
            ask = min(need - len(found) + others, MAX_CHUNK)
            read = await self.redis.zrange(self.keys.index(part), start, start + ask - 1)
            chunk = [_text(i) for i in cast(list[bytes | str], read)]
            found += await self.with_status(chunk, Status.ACTIVE)
            start += len(chunk)
            if len(chunk) < ask:
                break
        return found[:need]

    async def with_status(self, ids: list[str], status: str) -> list[str]:
        """The ids (of existing accounts) that have `status`, in their order."""
        if not ids or status == "all":
            return ids
        checked = OTHERS if status == Status.ACTIVE else (status,)
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                part = self.keys.partition_of(account_id)
                for other in checked:
                    pipe.zscore(self.keys.index(part, other), account_id)
            scores = await pipe.execute()
        per = len(checked)
        wanted = status != Status.ACTIVE  # active: held by none of the others
        return [
            account_id
            for n, account_id in enumerate(ids)
            if any(s is not None for s in scores[n * per : (n + 1) * per]) == wanted
        ]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
