"""Where tokenbroker's encrypted values live: every sealed record, found in batches with SCAN."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from service import account_record as accounts
from service import app_input, apps, settings
from service.crypto.sealed import Record
from service.store.keys import Keys

ACCOUNT_FIELDS = accounts.SEALED_FIELDS
APP_FIELDS = app_input.SEALED_FIELDS
SETTINGS_FIELDS = settings.SEALED_FIELDS


def account_record(keys: Keys, account_id: str) -> Record:
    """The sealed record of one account (service.account_record declares its fields)."""
    return accounts.sealed_record(keys.account(account_id), account_id)


def app_record(keys: Keys, app_id: str) -> Record:
    """The sealed record of one OAuth2 app (service.apps declares its fields)."""
    return apps.sealed_record(keys.app(app_id), app_id)


def settings_record(keys: Keys) -> Record:
    """The sealed record of the settings (service.settings declares its fields)."""
    return settings.sealed_record(keys.settings)


async def app_ids(redis: Redis, keys: Keys, batch: int) -> AsyncIterator[list[str]]:
    """Every app id, in batches (SSCAN: constant memory)."""
    cursor = 0
    while True:
        cursor, found = await redis.sscan(keys.apps, cursor, count=batch)
        if found:
            yield sorted(cast(list[str], found))
        if cursor == 0:
            return


async def account_ids(redis: Redis, keys: Keys, batch: int) -> AsyncIterator[list[str]]:
    """Every account id, in batches of about `batch` (SCAN over account hashes only).

    SCAN may name a key twice while Redis resizes its table; every user of it is idempotent.
    """
    pending: list[str] = []
    # scan_iter: a cluster client scans every master in turn
    async for key in redis.scan_iter(match=keys.account_pattern(), count=batch, _type="hash"):
        account = keys.account_id_of(cast(str, key))
        if account is not None:
            pending.append(account)
        if len(pending) >= batch:
            yield pending
            pending = []
    if pending:
        yield pending


async def records(redis: Redis, keys: Keys, batch: int) -> AsyncIterator[list[Record]]:
    """Every record with encrypted fields: the settings, then apps, then accounts."""
    yield [settings_record(keys)]
    async for ids in app_ids(redis, keys, batch):
        yield [app_record(keys, app_id) for app_id in ids]
    async for ids in account_ids(redis, keys, batch):
        yield [account_record(keys, account_id) for account_id in ids]


async def record_count(redis: Redis, keys: Keys) -> int:
    """About how many records `records` yields (for a progress bar): settings, apps, accounts."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.scard(keys.apps)
        for part in range(keys.partitions):
            pipe.zcard(keys.index(part))
        counts = await pipe.execute()
    return 1 + sum(int(c) for c in counts)


@dataclass(frozen=True)
class SealedRecords:
    """The catalogue key rotation walks (service.crypto.sealed.Catalogue)."""

    redis: Redis
    keys: Keys

    def records(self, batch: int) -> AsyncIterator[list[Record]]:
        """Every record: the settings, then apps, then accounts."""
        return records(self.redis, self.keys, batch)

    async def count(self) -> int:
        """About how many records there are."""
        return await record_count(self.redis, self.keys)
