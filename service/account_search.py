"""Prefix search over the words of account ids and users, on the per-partition search index.

The index (Keys.search) holds, score 0, `lower(text) NUL id` for the account's id and user
and for each part of them after a `.`, `-`, `_`, `@` or `+` (so `outlook` finds
`a-outlook-1` and `someone@outlook.com`). The scripts that save, restore and delete
accounts keep it (each carries the same small search_entries function). A search is one
ZLEXCOUNT and one or a few ZRANGEBYLEX per partition: O(log N + page) whatever the number
of accounts. Lower-casing is ASCII only, so that Lua's string.lower and Python agree.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.store.keys import Keys
from service.store.scripts import Scripts

log = structlog.get_logger("accounts")
_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}
TOP = b"\xff"  # never in UTF-8 text: every member with the prefix sorts below prefix + 0xFF
WINDOW = 10_000  # entries read per partition when a status filter narrows the matches


def ascii_lower(text: str) -> bytes:
    """The UTF-8 bytes of `text` with A-Z lower-cased (as Lua's string.lower does)."""
    return text.encode().translate(bytes(_ASCII_LOWER.get(b, b) for b in range(256)))


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
        """Accounts with a word of the id or user starting with `prefix`, by page.

        Ordered by the first matching entry. `total` is exact when every match was read;
        beyond that an account matching by several words counts once per word. With a
        status other than "all" the matches are filtered in a window of WINDOW accounts
        per partition (the filter costs the matches read, never the number of accounts).
        """
        low = b"[" + ascii_lower(prefix)
        high = b"(" + ascii_lower(prefix) + TOP
        need = WINDOW if status != "all" else (page + 1) * size
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in range(self.keys.partitions):
                pipe.zlexcount(self.keys.search(part), low, high)
            counts = [int(n) for n in await pipe.execute()]
        firsts: list[list[tuple[str, str]]] = []
        exact, read = True, 0
        for part, count in enumerate(counts):
            found, entries_read = await self._distinct(part, low, high, need, count)
            firsts.append(found)
            exact, read = exact and entries_read == count, read + entries_read
        ids = [account_id for _, account_id in heapq.merge(*firsts)]
        if status != "all":
            ids = await self._with_status(ids, status)
            return Found(len(ids), ids[page * size : (page + 1) * size])
        total = len(ids) if exact else sum(counts) - (read - len(ids))
        return Found(total, ids[page * size : (page + 1) * size])

    async def _distinct(
        self, part: int, low: bytes, high: bytes, need: int, count: int
    ) -> tuple[list[tuple[str, str]], int]:
        """The first `need` distinct accounts of a partition's matches: (entry, id) each."""
        found: dict[str, str] = {}
        offset = 0
        while len(found) < need and offset < count:
            chunk = await self.redis.zrangebylex(self.keys.search(part), low, high, offset, need)
            for member in chunk:
                entry, _, account_id = _text(member).rpartition("\x00")
                found.setdefault(account_id, entry)
            offset += need
            if len(chunk) < need:
                break
        return [(entry, account_id) for account_id, entry in found.items()], min(offset, count)

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

    async def backfill_quietly(self) -> None:
        """ensure_backfilled while the process serves (a web start never waits for it).

        Searches miss the accounts not indexed yet until it ends; Redis failing it is
        logged, and the next start goes on from the beginning (indexing is idempotent).
        """
        try:
            done = await self.ensure_backfilled()
        except (RedisError, OSError) as exc:
            log.warning("search_backfill_failed", error=type(exc).__name__)
            return
        if done is not None:
            log.info("search_backfilled", accounts=done)

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
