"""`tokenbroker import`: restores apps and accounts from an export, in pipelined batches.

Each account is restored by one script that also puts it in its partition's indexes and,
when active, in the schedule (due from its stored expiry), so workers pick it up as usual.
A record with the same id is replaced. Values under a configured old key are re-encrypted
under the current key; a value no configured key decrypts stops the import at its line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO, Any, cast

import orjson
from redis.asyncio import Redis

from service.account_record import Status
from service.clock import Clock
from service.crypto.cipher import Cipher
from service.ops.backup_format import FORMAT, VERSION, BackupError, check_account, check_app, reseal
from service.progress import Progress
from service.sealed_records import account_record, app_record
from service.store.keys import CacheNames, Keys
from service.store.scripts import Scripts
from service.timing import due_ms


@dataclass
class ImportStats:
    """What one import restored."""

    apps: int = 0
    accounts: int = 0
    resealed: int = 0  # values re-encrypted from an old key on the way in


@dataclass(frozen=True)
class Timing:
    """How the schedule of restored accounts is computed (from Config)."""

    refresh_lead_s: int
    keepalive_s: int


class Importer:
    """Reads the file line by line; accounts go to Redis in pipelined batches."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cipher: Cipher,
        clock: Clock,
        timing: Timing,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher
        self.clock, self.timing = clock, timing

    async def restore(
        self, source: IO[bytes], batch: int = 500, progress: Progress | None = None
    ) -> ImportStats:
        """Restore every record of `source`; raises BackupError naming the bad line."""
        stats, pending, ended = ImportStats(), [], False
        for number, raw in enumerate(source, 1):
            try:
                entry = orjson.loads(raw)
                kind = entry.get("type") if isinstance(entry, dict) else None
                if number == 1:
                    _check_header(entry, kind)
                elif ended or kind not in ("app", "account", "end"):
                    raise BackupError("unexpected line")
                elif kind == "app":
                    await self._restore_app(entry, stats)
                elif kind == "account":
                    pending.append(self._account_call(entry, stats))
                else:
                    ended = True
                    _check_counts(entry, stats.apps, stats.accounts + len(pending))
            except (orjson.JSONDecodeError, BackupError) as exc:
                raise BackupError(f"line {number}: {exc}") from None
            if len(pending) >= batch:
                stats.accounts += await self._flush(pending)
                pending = []
            if progress is not None:
                progress.advance(len(raw), note=f"{stats.accounts + len(pending)} accounts")
        stats.accounts += await self._flush(pending)
        if not ended:
            raise BackupError("the file ends without its end line: it is truncated")
        return stats

    async def _restore_app(self, entry: dict[str, Any], stats: ImportStats) -> None:
        app_id, fields = check_app(entry.get("id"), entry.get("record"))
        stats.resealed += reseal(app_record(self.keys, app_id), fields, self.cipher)
        existing = set(cast(list[str], await self.redis.hkeys(self.keys.app(app_id))))
        removed = ",".join(sorted(existing - set(fields)))
        mode = "update" if existing else "create"
        flat = [item for pair in fields.items() for item in pair]
        args = [app_id, self.keys.invalidations, mode, removed, CacheNames.app(app_id), *flat]
        if not await self.scripts.run("app_save", [self.keys.apps, self.keys.app(app_id)], args):
            raise BackupError(f"app {app_id!r} was created or deleted meanwhile; import again")
        stats.apps += 1

    def _account_call(
        self, entry: dict[str, Any], stats: ImportStats
    ) -> tuple[list[str], list[str]]:
        """The account_restore script's KEYS and ARGV for one account line."""
        account_id, fields = check_account(entry.get("id"), entry.get("record"))
        stats.resealed += reseal(account_record(self.keys, account_id), fields, self.cipher)
        status = fields.get("status", Status.ACTIVE.value)
        part = self.keys.partition_of(account_id)
        keys = [
            self.keys.account(account_id),
            self.keys.schedule(part),
            self.keys.index(part),
            self.keys.index(part, Status.REAUTH_REQUIRED),
            self.keys.app_counts(part),
            self.keys.search(part),
            self.keys.grant_deadlines(part),
            self.keys.scope_sets(part),
        ]
        flat = [item for pair in fields.items() for item in pair]
        due = str(self._due(fields))
        name = CacheNames.account(account_id)
        return keys, [account_id, fields["app"], status, due, self.keys.invalidations, name, *flat]

    def _due(self, fields: dict[str, str]) -> int:
        """When the restored account's next refresh is due (now when it holds no access token)."""
        now = self.clock.now_ms()
        expires, lifetime = fields.get("expiresAt"), fields.get("lifetimeMs")
        if not fields.get("accessToken") or not expires or not expires.isdigit():
            return now
        return due_ms(
            now,
            int(expires),
            int(lifetime) if lifetime and lifetime.isdigit() else None,
            lead_s=self.timing.refresh_lead_s,
            keepalive_s=self.timing.keepalive_s,
        )

    async def _flush(self, pending: list[tuple[list[str], list[str]]]) -> int:
        if not pending:
            return 0
        async with self.redis.pipeline(transaction=False) as pipe:
            for keys, args in pending:
                await self.scripts.queue(pipe, "account_restore", keys, args)
            await pipe.execute()
        return len(pending)


def _check_header(entry: Any, kind: object) -> None:
    if kind != "header" or entry.get("format") != FORMAT:
        raise BackupError("not a tokenbroker export (no header line)")
    if entry.get("version") != VERSION:
        raise BackupError(f"export format version {entry.get('version')!r} is not {VERSION}")


def _check_counts(entry: dict[str, Any], apps: int, accounts: int) -> None:
    if entry.get("apps") != apps or entry.get("accounts") != accounts:
        raise BackupError(
            f"the end line counts {entry.get('apps')} apps and {entry.get('accounts')} accounts, "
            f"the file holds {apps} and {accounts}"
        )
