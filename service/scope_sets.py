"""Granted-scope lists stored once, referenced by the accounts that hold the same list.

Most accounts of an app were granted the same scopes; the list (~60 bytes of JSON for a
Google app) in every account hash costs that much Redis memory per account. The account
hash's `scopes` field holds either the JSON list (records written before this) or `#` and
16 hex digits of the list's SHA-1: a field of its partition's Keys.scope_sets hash. The
scripts that write an account pass the list and store it there themselves, in the same
script as the account (scopes_lib.lua), so that no failover keeps a reference and loses its
list; lists are content-addressed, so an entry never changes, and each process remembers
the ones it has read. Readers expand references back to the JSON list (`expand`) before
anything else reads the record; an export writes the list.
"""

from __future__ import annotations

import hashlib
from typing import Any

import structlog
from redis.asyncio import Redis

from service.account_record import F
from service.store.keys import Keys

REF = "#"
log = structlog.get_logger("accounts")


def ref_of(scopes_json: str) -> str:
    """The reference of a scope list's JSON text."""
    return REF + hashlib.sha1(scopes_json.encode(), usedforsecurity=False).hexdigest()[:16]


class ScopeSets:
    """Expands the scope-list references of account hashes read from Redis."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis, self.keys = redis, keys
        self.known: dict[str, str] = {}  # reference -> JSON list (never changes)

    async def expand(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The account hashes with every scope reference replaced by its JSON list."""
        wanted = [(r[F.ID], r[F.SCOPES]) for r in rows if _ref(r) and F.ID in r]
        if not wanted:
            return rows
        parts = self.keys.partition_of
        await self._fetch(sorted({(parts(i), ref) for i, ref in wanted if ref not in self.known}))
        return [_expanded(row, self.known) for row in rows]

    async def expand_one(self, row: dict[str, Any]) -> dict[str, Any]:
        """`expand` of one account hash."""
        return (await self.expand([row]))[0]

    async def _fetch(self, wanted: list[tuple[int, str]]) -> None:
        if not wanted:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for part, ref in wanted:
                pipe.hget(self.keys.scope_sets(part), ref)
            values: list[Any] = await pipe.execute()
        for (_, ref), value in zip(wanted, values, strict=True):
            if value is None:
                log.error("scope_set_missing", ref=ref)
            else:
                self.known[ref] = value.decode() if isinstance(value, bytes) else str(value)


def _ref(row: dict[str, Any]) -> bool:
    value = row.get(F.SCOPES)
    return isinstance(value, str) and value.startswith(REF)


def _expanded(row: dict[str, Any], known: dict[str, str]) -> dict[str, Any]:
    value = row.get(F.SCOPES)
    if not isinstance(value, str) or not value.startswith(REF):
        return row
    if value in known:
        return {**row, F.SCOPES: known[value]}
    return {k: v for k, v in row.items() if k != F.SCOPES}  # logged above: read as no scopes
