"""Where encrypted values live: every record with sealed fields, found in batches with SCAN."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import cast

from redis.asyncio import Redis

from service.account_record import SEALED_FIELDS
from service.store.keys import Keys
from service.webhooks.headers import AAD as WEBHOOK_HEADERS_AAD
from service.webhooks.headers import SEALED as WEBHOOK_HEADERS
from service.webhooks.secrets import AAD as WEBHOOK_SECRET_AAD
from service.webhooks.secrets import CURRENT, PREVIOUS

ACCOUNT_FIELDS = SEALED_FIELDS
APP_FIELDS = ("clientSecret",)
SETTINGS_FIELDS = (CURRENT, PREVIOUS, WEBHOOK_HEADERS)


@dataclass(frozen=True)
class Record:
    """One Redis hash holding encrypted fields; `name` is safe to print (never a value)."""

    key: str
    name: str
    fields: tuple[str, ...]

    def aad(self, field: str) -> str:
        """The associated data a field of this record is bound to (as the stores seal it)."""
        if self.name == "settings":
            return WEBHOOK_HEADERS_AAD if field == WEBHOOK_HEADERS else WEBHOOK_SECRET_AAD
        return f"{self.name}:{field}"  # acct:<id>:accessToken, app:<id>:clientSecret


def account_record(keys: Keys, account_id: str) -> Record:
    """The record of one account (access and refresh token)."""
    return Record(keys.account(account_id), f"acct:{account_id}", ACCOUNT_FIELDS)


def app_record(keys: Keys, app_id: str) -> Record:
    """The record of one OAuth2 app (client secret)."""
    return Record(keys.app(app_id), f"app:{app_id}", APP_FIELDS)


def settings_record(keys: Keys) -> Record:
    """The settings hash (webhook signing secret, current and previous; webhook headers)."""
    return Record(keys.settings, "settings", SETTINGS_FIELDS)


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
