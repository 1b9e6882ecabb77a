"""Online key rotation: re-encrypt every sealed field under the current key, and count by key."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from service.crypto.cipher import Cipher, DecryptError
from service.crypto.sealed import Catalogue, Record
from service.progress import Progress
from service.store.scripts import Scripts

ROUNDS = 5  # reads of a record whose fields keep changing under us before giving up on it
Row = list[str | None]


@dataclass
class RotationStats:
    """What one `keys rotate` run did."""

    records: int = 0
    rotated: int = 0  # values re-encrypted under the current key
    retried: int = 0  # records read again because a writer changed them meanwhile
    changing: int = 0  # records still changing after ROUNDS reads: run again
    unreadable: Counter[str] = field(default_factory=Counter)  # key id -> values no key opens

    @property
    def complete(self) -> bool:
        """True when every value this run saw is now under the current key."""
        return not self.changing and not self.unreadable


class KeyRotation:
    """Moves encrypted values to the current key while web and workers keep writing."""

    def __init__(
        self, redis: Redis, scripts: Scripts, cipher: Cipher, catalogue: Catalogue
    ) -> None:
        self.redis, self.scripts, self.cipher, self.catalogue = redis, scripts, cipher, catalogue

    async def total(self) -> int:
        """About how many records a run visits (for the progress bar)."""
        return await self.catalogue.count()

    async def status(self, batch: int = 500, progress: Progress | None = None) -> Counter[str]:
        """Count the stored encrypted values by the key id they are encrypted with."""
        counts: Counter[str] = Counter()
        async for found in self.catalogue.records(batch):
            for row in await self._read(found):
                counts.update(self.cipher.key_id_of(v) for v in row if v)
            if progress is not None:
                progress.advance(len(found))
        return counts

    async def rotate(self, batch: int = 500, progress: Progress | None = None) -> RotationStats:
        """Re-encrypt every value not under the current key; resumable and idempotent.

        Values already under the current key are skipped, so a run that stopped halfway
        is finished by running it again. Each record is replaced by a script that sets a
        field only while it still holds the value read, so a token written meanwhile (a
        refresh) is never overwritten: such a record is read again.
        """
        stats = RotationStats()
        async for found in self.catalogue.records(batch):
            await self._rotate_batch(found, stats)
            if progress is not None:
                progress.advance(len(found), note=f"{stats.rotated} values re-encrypted")
        return stats

    async def _rotate_batch(self, batch: list[Record], stats: RotationStats) -> None:
        stats.records += len(batch)
        todo, unreadable = batch, {}
        for _ in range(ROUNDS):
            swaps: list[tuple[Record, list[str]]] = []
            for record, row in zip(todo, await self._read(todo), strict=True):
                triples, bad = self._reseal(record, row)
                unreadable.update({(record.key, f): kid for f, kid in bad.items()})
                if triples:
                    swaps.append((record, triples))
            replaced = await self._swap(swaps)
            stats.rotated += sum(replaced)
            todo = [r for (r, t), n in zip(swaps, replaced, strict=True) if n < len(t) // 3]
            if not todo:
                break
            stats.retried += len(todo)
        else:
            stats.changing += len(todo)
        stats.unreadable.update(unreadable.values())

    def _reseal(self, record: Record, row: Row) -> tuple[list[str], dict[str, str]]:
        """(field, old, new) triples for values under another key; unreadable fields' key ids."""
        triples: list[str] = []
        bad: dict[str, str] = {}
        for name, value in zip(record.fields, row, strict=True):
            kid = self.cipher.key_id_of(value) if value else self.cipher.current_id
            if value is None or kid == self.cipher.current_id:
                continue
            aad = record.aad(name)
            try:
                plain = self.cipher.decrypt(value, aad)
            except DecryptError:
                bad[name] = kid
                continue
            triples += [name, value, self.cipher.encrypt(plain, aad)]
        return triples, bad

    async def _read(self, batch: list[Record]) -> list[Row]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in batch:
                pipe.hmget(record.key, list(record.fields))
            rows: list[Row] = await pipe.execute()
        return rows

    async def _swap(self, swaps: list[tuple[Record, list[str]]]) -> list[int]:
        if not swaps:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for record, triples in swaps:
                await self.scripts.queue(pipe, "hash_swap_fields", [record.key], triples)
            return [int(n) for n in await pipe.execute()]
