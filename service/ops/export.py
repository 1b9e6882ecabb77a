"""`tokenbroker export`: apps and accounts as JSON lines, streamed with constant memory.

Every secret in the file is encrypted under the current key (TOKENBROKER_SECRET): values
still under an old key are re-encrypted on the way out (the store itself is not changed),
and a value no configured key decrypts stops the export. The file is as secret as the key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from redis.asyncio import Redis

from service.clock import Clock, iso
from service.crypto.cipher import Cipher
from service.crypto.sealed import Record
from service.ops.backup_format import FORMAT, VERSION, line, reseal
from service.progress import Progress
from service.scope_sets import ScopeSets
from service.sealed_records import (
    account_ids,
    account_record,
    app_ids,
    app_record,
    record_count,
)
from service.store.keys import Keys


@dataclass
class ExportStats:
    """What one export wrote."""

    apps: int = 0
    accounts: int = 0
    resealed: int = 0  # values re-encrypted from an old key on the way out


class Exporter:
    """Writes the header, every app, every account, and an end line with the counts."""

    def __init__(self, redis: Redis, keys: Keys, cipher: Cipher, clock: Clock) -> None:
        self.redis, self.keys, self.cipher, self.clock = redis, keys, cipher, clock
        self.scope_sets = ScopeSets(redis, keys)  # the file holds each account's own list

    async def total(self) -> int:
        """About how many apps and accounts there are (for the progress bar)."""
        return await record_count(self.redis, self.keys) - 1  # no settings in the file

    async def export(
        self, out: IO[bytes], batch: int = 500, progress: Progress | None = None
    ) -> ExportStats:
        """Write the file to `out`, one SCAN batch of records at a time."""
        stats = ExportStats()
        created = iso(self.clock.now_ms())
        out.write(
            line(
                "header",
                format=FORMAT,
                version=VERSION,
                keyId=self.cipher.current_id,
                created=created,
                prefix=self.keys.prefix,
            )
        )
        async for ids in app_ids(self.redis, self.keys, batch):
            records = [app_record(self.keys, app_id) for app_id in ids]
            stats.apps += await self._write(out, "app", records, stats)
            if progress is not None:
                progress.advance(len(ids))
        async for ids in account_ids(self.redis, self.keys, batch):
            records = [account_record(self.keys, account_id) for account_id in ids]
            stats.accounts += await self._write(out, "account", records, stats)
            if progress is not None:
                progress.advance(len(ids))
        out.write(line("end", apps=stats.apps, accounts=stats.accounts))
        return stats

    async def _write(
        self, out: IO[bytes], kind: str, records: list[Record], stats: ExportStats
    ) -> int:
        """Write one batch; returns how many records were written (deleted ones are not)."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for record in records:
                pipe.hgetall(record.key)
            rows: list[dict[str, str]] = await pipe.execute()
        if kind == "account":
            rows = await self.scope_sets.expand(rows)
        written = 0
        for record, fields in zip(records, rows, strict=True):
            if not fields or (kind == "account" and "app" not in fields):
                continue  # deleted since SCAN named it (or a fragment no store reads)
            stats.resealed += reseal(record, fields, self.cipher)
            record_id = record.name.partition(":")[2]
            out.write(line(kind, id=record_id, record=fields))
            written += 1
        return written
