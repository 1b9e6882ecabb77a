"""Prefix search over the words of account ids and users, on the per-partition search index.

The index (Keys.search) holds, score 0, `lower(text) NUL id` for the account's id and user
and for each part of them after a `.`, `-`, `_`, `@` or `+` (so `outlook` finds
`a-outlook-1` and `someone@outlook.com`), except the last label of a mail domain (`com`
of `x@example.com`: a word of nearly every account, which would cost an entry each while
listing them all is what the unfiltered list does). An id without A-Z gets no whole-id entry: the
partition's index of all accounts (ids, ordered) finds it by the same prefix range, and an
entry saved there costs ~130 bytes of Redis memory per account. The scripts that save,
restore and delete accounts keep it (each carries the same small search_entries function).
A search is two ZLEXCOUNTs and one or a few ZRANGEBYLEX per partition and index: O(log N +
page) whatever the number of accounts. Lower-casing is ASCII only, so that Lua's
string.lower and Python agree.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service.account_index import AccountIndex
from service.account_record import F
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
        self.index = AccountIndex(redis, keys)

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
        sources = [(self.keys.search(p), self.keys.index(p)) for p in range(self.keys.partitions)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for words, ids in sources:
                pipe.zlexcount(words, low, high)
                pipe.zlexcount(ids, low, high)
            counts = [int(n) for n in await pipe.execute()]
        firsts: list[list[tuple[str, str]]] = []
        exact, read = True, 0
        for n, (words, ids) in enumerate(sources):
            by_word, word_read = await self._distinct(words, low, high, need, counts[2 * n])
            by_id, id_read = await self._distinct(ids, low, high, need, counts[2 * n + 1])
            firsts.append(_first_per_id(by_word, by_id))
            exact = exact and word_read == counts[2 * n] and id_read == counts[2 * n + 1]
            read += word_read + id_read
        found = [account_id for _, account_id in heapq.merge(*firsts)]
        if status != "all":
            found = await self.index.with_status(found, status)
            return Found(len(found), found[page * size : (page + 1) * size])
        total = len(found) if exact else sum(counts) - (read - len(found))
        return Found(total, found[page * size : (page + 1) * size])

    async def _distinct(
        self, key: str, low: bytes, high: bytes, need: int, count: int
    ) -> tuple[list[tuple[str, str]], int]:
        """The first `need` distinct accounts of one index's matches: (entry, id) each.

        In the search index a member is `entry NUL id`; in the index of all accounts it is
        the id, which answers for itself only when it has no A-Z (else its lower-cased
        entry in the search index does).
        """
        found: dict[str, str] = {}
        offset = 0
        while len(found) < need and offset < count:
            chunk = await self.redis.zrangebylex(key, low, high, offset, need)
            for member in chunk:
                entry, _, account_id = _text(member).rpartition("\x00")
                if not entry and ascii_lower(account_id) != account_id.encode():
                    continue
                found.setdefault(account_id, entry or account_id)
            offset += need
            if len(chunk) < need:
                break
        return [(entry, account_id) for account_id, entry in found.items()], min(offset, count)

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
            removed = await self.ensure_compacted()
        except (RedisError, OSError) as exc:
            log.warning("search_backfill_failed", error=type(exc).__name__)
            return
        if done is not None:
            log.info("search_backfilled", accounts=done)
        if removed is not None:
            log.info("search_compacted", entries=removed)

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

    async def ensure_compacted(self, batch: int = 500) -> int | None:
        """Drop what versions before it indexed twice (at start): None when done before.

        Every start removes the index of active accounts they kept (active is all minus the
        other statuses now); once, the whole-id search entries of ids without A-Z go (the
        index of all accounts finds those) and so do the entries of the last label of a
        mail domain. Idempotent: an entry an older process adds again meanwhile costs
        memory only, never a wrong answer. Returns the entries removed.
        """
        for part in range(self.keys.partitions):
            await self.redis.unlink(self.keys.legacy_active_index(part))
        if await self.redis.exists(self.keys.search_compacted):
            return None
        removed = 0
        for part in range(self.keys.partitions):
            low = "-"
            while chunk := await self.redis.zrangebylex(self.keys.index(part), low, "+", 0, batch):
                found = [_text(i) for i in chunk]
                removed += await self._compact(part, found)
                low = "(" + found[-1]
        await self.redis.set(self.keys.search_compacted, "1")
        return removed

    async def _compact(self, part: int, ids: list[str]) -> int:
        """Remove the entries of these accounts that search_lib.lua no longer writes."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.hget(self.keys.account(account_id), F.USER)
            users = await pipe.execute()
        gone: list[bytes] = []
        for account_id, user in zip(ids, users, strict=True):
            if ascii_lower(account_id) == account_id.encode():
                gone.append(entry(account_id, account_id))
            for text in (account_id, _text(user or "")):
                last_label = tld_entry(text, account_id)
                if last_label is not None:
                    gone.append(last_label)
        return int(await self.redis.zrem(self.keys.search(part), *gone)) if gone else 0

    async def _index(self, part: int, ids: list[str]) -> int:
        keys = [self.keys.search(part), *(self.keys.account(i) for i in ids)]
        return int(await self.scripts.run("account_search_index", keys, ids))


def entry(word: str, account_id: str) -> bytes:
    """The search-index member of one word of an account (as search_lib.lua builds it)."""
    return ascii_lower(word) + b"\x00" + account_id.encode()


def tld_entry(text: str, account_id: str) -> bytes | None:
    """The entry of the last label of the mail domain in `text` (none is written any more)."""
    low = ascii_lower(text)
    at, cut = low.find(b"@"), max(low.rfind(bytes([c])) for c in b".-_@+")
    if at < 0 or cut <= at or low[cut] != ord(".") or cut == len(low) - 1:
        return None
    return low[cut + 1 :] + b"\x00" + account_id.encode()


def _first_per_id(*sources: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The sorted (entry, id) lists of one partition merged, each id at its first entry."""
    seen: set[str] = set()
    out: list[tuple[str, str]] = []
    for entry, account_id in heapq.merge(*sources):
        if account_id not in seen:
            seen.add(account_id)
            out.append((entry, account_id))
    return out


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
