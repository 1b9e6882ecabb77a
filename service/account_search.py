"""Prefix search over account ids and users, on the per-partition search index.

The index (Keys.search) holds `lower(user) NUL id` and `lower(id) NUL id` for every account,
score 0, kept by the scripts that save, restore and delete accounts. A search is one
ZLEXCOUNT and one ZRANGEBYLEX per partition: O(log N + page) whatever the number of
accounts. Lower-casing is ASCII only, so that Lua's string.lower and Python agree.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

from redis.asyncio import Redis

from service.store.keys import Keys
from service.store.scripts import Scripts

_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
SEP = b"\x00"
TOP = b"\xff"  # never in UTF-8 text: every member with the prefix sorts below prefix + 0xFF
WINDOW = 10_000  # entries read per partition when a status filter narrows the matches


def ascii_lower(text: str) -> bytes:
    """The UTF-8 bytes of `text` with A-Z lower-cased (as Lua's string.lower does)."""
    return text.encode().translate(bytes(_ASCII_LOWER.get(b, b) for b in range(256)))


def entries(account_id: str, user: str) -> list[bytes]:
    """The search-index members of one account (the scripts build the same)."""
    raw = account_id.encode()
    return [ascii_lower(user) + SEP + raw, ascii_lower(account_id) + SEP + raw]


@dataclass(frozen=True)
class Found:
    """One page of a search: the matching ids of the page and the number of matches."""

    total: int
    ids: list[str]


class AccountSearch:
    """Reads the search index; writing it is the account scripts' job (and the backfill's)."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts) -> None:
        self.redis, self.keys, self.scripts = redis, keys, scripts

    async def find(self, prefix: str, page: int, size: int, status: str = "all") -> Found:
        """Accounts whose id or user starts with `prefix` (ASCII case-insensitive), by page.

        Ordered by the matching entry. `total` is exact when the matches fit in the entries
        read; beyond that an account matching by both id and user counts twice. With a
        status other than "all" the matches are filtered in a window of WINDOW entries
        per partition (the filter costs the matches read, never the number of accounts).
        """
        low = b"[" + ascii_lower(prefix)
        high = b"(" + ascii_lower(prefix) + TOP
        want = WINDOW if status != "all" else (page + 1) * size * 2
        parts = range(self.keys.partitions)
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in parts:
                pipe.zlexcount(self.keys.search(part), low, high)
                pipe.zrangebylex(self.keys.search(part), low, high, 0, want)
            rows = await pipe.execute()
        counted = sum(int(n) for n in rows[0::2])
        ordered = list(heapq.merge(*rows[1::2]))
        ids, seen = [], set()
        for member in ordered:
            account_id = _text(member).split("\x00", 1)[1]
            if account_id not in seen:
                seen.add(account_id)
                ids.append(account_id)
        if status != "all":
            ids = await self._with_status(ids, status)
            return Found(len(ids), ids[page * size : (page + 1) * size])
        total = counted - (len(ordered) - len(ids))
        return Found(total, ids[page * size : (page + 1) * size])

    async def _with_status(self, ids: list[str], status: str) -> list[str]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.zscore(self.keys.index(self.keys.partition_of(account_id), status), account_id)
            scores = await pipe.execute()
        return [i for i, score in zip(ids, scores, strict=True) if score is not None]

    async def ensure_backfilled(self) -> int | None:
        """Backfill once (at start): None when done before, else the accounts indexed."""
        if await self.redis.exists(self.keys.search_backfilled):
            return None
        done = await self.backfill()
        await self.redis.set(self.keys.search_backfilled, "1")
        return done

    async def backfill(self, batch: int = 500) -> int:
        """Index every stored account (idempotent); returns how many were indexed."""
        done = 0
        for part in range(self.keys.partitions):
            low = "-"  # a cursor on the id-ordered index: no skip when accounts come or go
            while chunk := await self.redis.zrangebylex(self.keys.index(part), low, "+", 0, batch):
                found = [_text(i) for i in chunk]
                done += await self._index(part, found)
                low = "(" + found[-1]
        return done

    async def _index(self, part: int, ids: list[str]) -> int:
        keys = [self.keys.search(part), *(self.keys.account(i) for i in ids)]
        return int(await self.scripts.run("account_search_index", keys, ids))


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
