"""Accounts: the stored record, its public view, and the scripts that change it."""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from redis.asyncio import Redis

from service import errors
from service.clock import iso
from service.crypto import Cipher
from service.events import Wanted, always, wanted_event
from service.keys import Keys
from service.lua import Scripts
from service.redisconn import read_hash

SCHEMA_VERSION = "1"
STATUSES = ("active", "reauth_required")


@dataclass(frozen=True)
class Account:
    """One account as stored; tokens stay encrypted until asked for."""

    id: str
    app: str
    provider: str
    user: str
    status: str
    name: str | None = None
    reason: str | None = None
    scopes: list[str] = field(default_factory=list)
    expires_at_ms: int | None = None
    lifetime_ms: int | None = None
    refreshed_at_ms: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None
    attempts: int = 0
    last_error: dict[str, Any] | None = None
    encrypted_access: str | None = field(default=None, repr=False)
    encrypted_refresh: str | None = field(default=None, repr=False)

    def valid_for_ms(self, now_ms: int) -> int:
        """How long the stored access token stays valid (negative: expired or none)."""
        if self.encrypted_access is None or self.expires_at_ms is None:
            return -1
        return self.expires_at_ms - now_ms

    def public(self) -> dict[str, Any]:
        """The account as the API shows it: never a token."""
        return {
            "account": self.id,
            "name": self.name,
            "app": self.app,
            "provider": self.provider,
            "user": self.user,
            "status": self.status,
            "reason": self.reason,
            "scopes": self.scopes,
            "expires": iso(self.expires_at_ms) if self.expires_at_ms else None,
            "refreshedAt": iso(self.refreshed_at_ms) if self.refreshed_at_ms else None,
            "created": iso(self.created_ms) if self.created_ms else None,
            "updated": iso(self.updated_ms) if self.updated_ms else None,
            "attempts": self.attempts,
            "lastError": self.last_error,
        }


def _int(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name)
    return int(value) if value else None


def account_from_hash(raw: dict[str, str]) -> Account | None:
    """Build an Account from its Redis hash (None for an empty hash)."""
    if not raw or "app" not in raw:
        return None
    return Account(
        id=raw["account"],
        app=raw["app"],
        provider=raw.get("provider", "oidc"),
        user=raw.get("user", ""),
        status=raw.get("status", "active"),
        name=raw.get("name") or None,
        reason=raw.get("reason") or None,
        scopes=orjson.loads(raw.get("scopes", "[]")),
        expires_at_ms=_int(raw, "expiresAt"),
        lifetime_ms=_int(raw, "lifetimeMs"),
        refreshed_at_ms=_int(raw, "refreshedAt"),
        created_ms=_int(raw, "createdAt"),
        updated_ms=_int(raw, "updatedAt"),
        attempts=_int(raw, "attempts") or 0,
        last_error=orjson.loads(raw["lastError"]) if raw.get("lastError") else None,
        encrypted_access=raw.get("accessToken"),
        encrypted_refresh=raw.get("refreshToken"),
    )


def _flat(pairs: dict[str, str]) -> list[str]:
    return [item for pair in pairs.items() for item in pair]


class AccountStore:
    """Reads accounts and changes them, each change one Lua script."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cipher: Cipher,
        notify: Callable[[str], None] = lambda key: None,
        wants: Wanted = always,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher
        self.notify = notify  # tells this process's cache at once; other processes via pub/sub
        self.wants = wants  # which events webhooks want queued (none while they are off)

    async def get(self, account_id: str) -> Account | None:
        """Return the account or None."""
        return account_from_hash(await read_hash(self.redis, self.keys.account(account_id)))

    async def require(self, account_id: str) -> Account:
        """Return the account or raise AccountNotFound."""
        account = await self.get(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account with id {account_id!r}")
        return account

    def access_token(self, account: Account) -> str:
        """Decrypt the account's access token."""
        assert account.encrypted_access is not None  # noqa: S101 - callers check validity first
        return self.cipher.decrypt(account.encrypted_access, f"acct:{account.id}:accessToken")

    def refresh_token(self, account: Account) -> str:
        """Decrypt the account's refresh token (never leaves the service)."""
        assert account.encrypted_refresh is not None  # noqa: S101 - every account has one
        return self.cipher.decrypt(account.encrypted_refresh, f"acct:{account.id}:refreshToken")

    def token_fields(
        self, account_id: str, access: str | None, refresh: str | None
    ) -> dict[str, str]:
        """Encrypt tokens into hash fields bound to the account."""
        pairs: dict[str, str] = {}
        if access is not None:
            pairs["accessToken"] = self.cipher.encrypt(access, f"acct:{account_id}:accessToken")
        if refresh is not None:
            pairs["refreshToken"] = self.cipher.encrypt(refresh, f"acct:{account_id}:refreshToken")
        return pairs

    async def save(
        self,
        account_id: str,
        app: str,
        pairs: dict[str, str],
        due_ms: int,
        now_ms: int,
        event_data: dict[str, Any],
    ) -> str:
        """Create or update an account (import, re-consent); returns 'new' or 'existing'."""
        part = self.keys.partition_of(account_id)
        keys = [
            self.keys.account(account_id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part),
            self.keys.index(part, "active"),
            self.keys.index(part, "reauth_required"),
            self.keys.app_counts(part),
        ]
        fields = {
            "v": SCHEMA_VERSION,
            "account": account_id,
            "app": app,
            "status": "active",
            "attempts": "0",
            "updatedAt": str(now_ms),
            **pairs,
        }
        added = await wanted_event(self.wants, "accountAdded", account_id, app, event_data, now_ms)
        success = await wanted_event(
            self.wants, "authenticationSuccess", account_id, app, event_data, now_ms
        )
        args = [account_id, app, due_ms, self.keys.invalidations, added, success, *_flat(fields)]
        result = str(await self.scripts.run("account_save", keys, args))
        self.notify(f"acct:{account_id}")
        return result

    async def store_tokens(
        self,
        account: Account,
        lock_value: str,
        pairs: dict[str, str],
        due_ms: int,
        missing: list[str],
        now_ms: int,
    ) -> str:
        """Write a refresh's result and release the lock; returns 'ok', 'late' or 'gone'.

        `missing` lists required scopes the grant lacks; a change to a non-empty list
        records scopesMissing.
        """
        account_id = account.id
        part = self.keys.partition_of(account_id)
        keys = [
            self.keys.account(account_id),
            self.keys.lock(account_id),
            self.keys.schedule(part),
            self.keys.events(part),
        ]
        data = {"user": account.user, "provider": account.provider, "missingScopes": missing}
        event = (  # asked only when some are missing: the common case costs no settings read
            await wanted_event(self.wants, "scopesMissing", account_id, account.app, data, now_ms)
            if missing
            else ""
        )
        missing_json = orjson.dumps(missing).decode()
        args = [
            lock_value,
            due_ms,
            self.keys.invalidations,
            account_id,
            missing_json,
            event,
            *_flat(pairs),
        ]
        result = str(await self.scripts.run("account_store_tokens", keys, args))
        self.notify(f"acct:{account_id}")
        return result

    async def mark_reauth(
        self, account: Account, lock_value: str, reason: str, error: dict[str, Any], now_ms: int
    ) -> bool:
        """Set status reauth_required with its event; True when this call changed it."""
        part = self.keys.partition_of(account.id)
        keys = [
            self.keys.account(account.id),
            self.keys.lock(account.id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part, "active"),
            self.keys.index(part, "reauth_required"),
        ]
        data = {
            "user": account.user,
            "provider": account.provider,
            "status": "reauth_required",
            "reason": reason,
            **error,
        }
        event = await wanted_event(
            self.wants, "authenticationError", account.id, account.app, data, now_ms
        )
        fields = {
            "status": "reauth_required",
            "reason": reason,
            "lastError": orjson.dumps(error).decode(),
            "updatedAt": str(now_ms),
        }
        args = [lock_value, account.id, self.keys.invalidations, event, *_flat(fields)]
        changed = int(await self.scripts.run("account_mark_reauth", keys, args)) == 1
        self.notify(f"acct:{account.id}")
        return changed

    async def note_failure(
        self, account_id: str, lock_value: str, error: dict[str, Any], retry_ms: int
    ) -> int:
        """Record a retryable failure, retry at `retry_ms`, release the lock; returns attempts."""
        part = self.keys.partition_of(account_id)
        keys = [self.keys.account(account_id), self.keys.lock(account_id), self.keys.schedule(part)]
        args = [lock_value, orjson.dumps(error).decode(), account_id, retry_ms]
        return int(await self.scripts.run("account_note_failure", keys, args))

    async def delete(self, account: Account, now_ms: int) -> bool:
        """Delete the account and every key of it, recording accountDeleted."""
        part = self.keys.partition_of(account.id)
        keys = [
            self.keys.account(account.id),
            self.keys.lock(account.id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part),
            self.keys.index(part, "active"),
            self.keys.index(part, "reauth_required"),
            self.keys.app_counts(part),
        ]
        data = {"user": account.user, "provider": account.provider}
        event = await wanted_event(
            self.wants, "accountDeleted", account.id, account.app, data, now_ms
        )
        args = [account.id, self.keys.invalidations, event]
        deleted = int(await self.scripts.run("account_delete", keys, args)) == 1
        self.notify(f"acct:{account.id}")
        return deleted

    async def count_by_status(self) -> dict[str, int]:
        """Return how many accounts have each status, summed over partitions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for status in STATUSES:
                for part in range(self.keys.partitions):
                    pipe.zcard(self.keys.index(part, status))
            counts = await pipe.execute()
        per = self.keys.partitions
        return {s: sum(counts[i * per : (i + 1) * per]) for i, s in enumerate(STATUSES)}

    async def page(self, page: int, size: int, status: str = "all") -> tuple[int, list[Account]]:
        """Return (total, accounts of the page) ordered by id, merged over partitions."""
        names = [self.keys.index(p, status) for p in range(self.keys.partitions)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for name in names:
                pipe.zcard(name)
                pipe.zrange(name, 0, (page + 1) * size - 1)
            rows = await pipe.execute()
        total = sum(rows[0::2])
        ids = list(heapq.merge(*rows[1::2]))[page * size : (page + 1) * size]
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.hgetall(self.keys.account(account_id))
            records = await pipe.execute()
        return total, [a for a in map(account_from_hash, records) if a is not None]
