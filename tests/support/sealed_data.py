"""Test data with encrypted fields: apps, accounts and webhook secrets, written by the stores."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from service.accounts import AccountWrite
from service.clock import SystemClock, iso
from service.core import Core
from service.crypto.cipher import Cipher
from service.sealed_records import account_record, records
from service.store.keys import Keys
from service.webhooks.headers import WebhookHeaders
from service.webhooks.secrets import WebhookSecrets

OLD_KEY = bytes(range(100, 132))
NEW_KEY = bytes(range(200, 232))


async def make_app(core: Core, app_id: str = "gmail") -> str:
    """A google app with a client secret; returns its id."""
    body = {
        "id": app_id,
        "provider": "gmail",
        "clientId": f"{app_id}-client",
        "clientSecret": f"{app_id}-secret",
    }
    return (await core.apps.create(body, iso(SystemClock().now_ms()))).id


async def make_account(core: Core, app_id: str, n: int, *, access: bool = True) -> None:
    """Account `acct<n>` with a refresh token (and an access token unless told otherwise)."""
    account_id, now = f"acct{n}", SystemClock().now_ms()
    write = AccountWrite(
        app=app_id,
        provider="gmail",
        user=f"user{n}@example.test",
        name=f"Account {n} — ünïcode" if n % 7 == 0 else None,
        access_token=f"access-{n}" if access else None,
        refresh_token=f"refresh-{n}",
        scopes=["email"],
        expires_at_ms=now + 3_600_000 if access else None,
        lifetime_ms=3_600_000 if access else None,
    )
    await core.accounts.save(account_id, write, now + 60_000, now, {})


async def make_accounts(
    core: Core, app_id: str, count: int, first: int = 0, chunk: int = 100
) -> None:
    """`count` accounts from acct<first>, `chunk` at a time; every 10th needs re-consent."""
    now = SystemClock().now_ms()
    for start in range(first, first + count, chunk):
        ids = range(start, min(start + chunk, first + count))
        await asyncio.gather(*(make_account(core, app_id, n, access=n % 5 != 0) for n in ids))
        reauth = [await core.accounts.require(f"acct{n}") for n in ids if n % 10 == 0]
        await asyncio.gather(
            *(core.accounts.mark_reauth(a, "", "revoked", {"error": "x"}, now) for a in reauth)
        )


async def make_webhook_secrets(core: Core) -> None:
    """A current and a previous webhook secret (two rotations)."""
    secrets = WebhookSecrets(core.redis, core.keys, core.cipher)
    await secrets.rotate(SystemClock().now_ms())
    await secrets.rotate(SystemClock().now_ms())


async def make_webhook_headers(core: Core) -> None:
    """Custom webhook headers (their values sealed in one settings field)."""
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    await core.settings.update({"webhookHeaders": {"Authorization": "Bearer hook-token"}}, headers)


async def seal_under(
    redis: Redis, keys: Keys, key: bytes, now_cipher: Cipher, ids: list[str]
) -> None:
    """Re-encrypt the given accounts' tokens under `key` (as an old deployment wrote them)."""
    other = Cipher(key)
    for account_id in ids:
        record = account_record(keys, account_id)
        values = await redis.hmget(record.key, list(record.fields))
        for name, value in zip(record.fields, values, strict=True):
            if value:
                plain = now_cipher.decrypt(str(value), record.aad(name))
                await redis.hset(record.key, name, other.encrypt(plain, record.aad(name)))


async def plaintexts(redis: Redis, keys: Keys, cipher: Cipher) -> dict[tuple[str, str], str]:
    """Every encrypted value decrypted, by (record name, field)."""
    found: dict[tuple[str, str], str] = {}
    async for batch in records(redis, keys, 100):
        for record in batch:
            values: list[Any] = await redis.hmget(record.key, list(record.fields))
            for name, value in zip(record.fields, values, strict=True):
                if value:
                    found[(record.name, name)] = cipher.decrypt(value, record.aad(name))
    return found
