"""Accounts: reading them and the fenced scripts that change them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import structlog
from redis.asyncio import Redis

from service import errors
from service.account_index import AccountIndex
from service.account_outcomes import (
    APP_MISMATCH,
    Marked,
    Noted,
    SaveState,
    Stored,
    marked,
    noted,
    stored,
)
from service.account_record import (
    STATUSES,
    Account,
    AccountWrite,
    F,
    Status,
    account_fields,
    account_from_hash,
    flat,
    sealed_aad,
)
from service.account_search import AccountSearch
from service.crypto.cipher import Cipher
from service.scope_sets import ScopeSets
from service.store.cache import Invalidate, forget_nothing
from service.store.connection import read_hash
from service.store.keys import CacheNames, Keys
from service.store.replicas import ReplicaWait
from service.store.scripts import Scripts
from service.webhooks.events import Wanted, always, wanted_event

log = structlog.get_logger("accounts")


@dataclass(frozen=True)
class Saved:
    """The outcome of saving a grant: new or existing, and its grant generation."""

    state: SaveState
    grant_gen: int


def reauth_event_data(account: Account, reason: str, error: dict[str, Any]) -> dict[str, Any]:
    """The authenticationError event's data: the provider's HTTP status as `httpStatus`."""
    data: dict[str, Any] = {k: v for k, v in error.items() if k not in ("status", "time")}
    if "status" in error:
        data["httpStatus"] = error["status"]
    return {
        **data,
        "user": account.user,
        "provider": account.provider,
        "status": Status.REAUTH_REQUIRED.value,
        "reason": reason,
    }


class AccountStore:
    """Reads accounts and changes them, each change one Lua script."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cipher: Cipher,
        notify: Invalidate = forget_nothing,
        wants: Wanted = always,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher
        self.notify = notify  # tells this process's cache at once; other processes via pub/sub
        self.wants = wants  # which events webhooks want queued (none while they are off)
        self.search = AccountSearch(redis, keys, scripts)
        self.index: AccountIndex = self.search.index  # the status indexes
        self.scope_sets = ScopeSets(redis, keys)

    async def get(self, account_id: str) -> Account | None:
        """Return the account or None."""
        raw = await read_hash(self.redis, self.keys.account(account_id))
        return _the_one(account_from_hash(await self.scope_sets.expand_one(raw)), account_id)

    async def require(self, account_id: str) -> Account:
        """Return the account or raise AccountNotFound."""
        account = await self.get(account_id)
        if account is None:
            raise errors.AccountNotFound(f"no account with id {account_id!r}")
        return account

    def access_token(self, account: Account) -> str:
        """Decrypt the account's access token."""
        assert account.encrypted_access is not None  # noqa: S101 - callers check validity first
        return self.cipher.decrypt(account.encrypted_access, sealed_aad(account.id, F.ACCESS_TOKEN))

    def refresh_token(self, account: Account) -> str:
        """Decrypt the account's refresh token (never leaves the service)."""
        assert account.encrypted_refresh is not None  # noqa: S101 - every account has one
        return self.cipher.decrypt(
            account.encrypted_refresh, sealed_aad(account.id, F.REFRESH_TOKEN)
        )

    def previous_refresh_token(self, account: Account) -> str | None:
        """Decrypt the refresh token the last rotation replaced (None when none is kept)."""
        sealed = account.encrypted_previous_refresh
        if sealed is None:
            return None
        return self.cipher.decrypt(sealed, sealed_aad(account.id, F.PREVIOUS_REFRESH_TOKEN))

    def fields(self, account_id: str, write: AccountWrite, now_ms: int) -> dict[str, str]:
        """The hash fields of a write (the one builder: service.account_record)."""
        return account_fields(self.cipher, account_id, write, now_ms)

    async def save(
        self,
        account_id: str,
        write: AccountWrite,
        due_ms: int,
        now_ms: int,
        event_data: dict[str, Any],
    ) -> Saved:
        """Create an account or replace its grant (import, consent), moving the generation on.

        Raises AccountAppMismatch when the account exists on another app.
        """
        assert write.app is not None  # noqa: S101 - every grant names its app
        app = write.app
        part = self.keys.partition_of(account_id)
        keys = [
            self.keys.account(account_id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part),
            self.keys.index(part, Status.REAUTH_REQUIRED),
            self.keys.app_counts(part),
            self.keys.search(part),
            self.keys.grant_deadlines(part),
            self.keys.account_resources(account_id),
            self.keys.scope_sets(part),
        ]
        fields = self.fields(account_id, write, now_ms)
        added = await wanted_event(self.wants, "accountAdded", account_id, app, event_data, now_ms)
        success = await wanted_event(
            self.wants, "authenticationSuccess", account_id, app, event_data, now_ms
        )
        name = CacheNames.account(account_id)
        args = [account_id, app, due_ms, self.keys.invalidations, added, success, name]
        args += flat(fields)
        state, value = await self.scripts.run("account_save", keys, args)
        self.notify(CacheNames.account(account_id))
        if state == APP_MISMATCH:
            raise errors.AccountAppMismatch(
                f"account {account_id!r} belongs to app {value!r}; delete it to add it anew",
                details={"app": str(value)},
            )
        return Saved(SaveState(state), int(value))

    async def store_tokens(
        self,
        account: Account,
        lock_value: str,
        pairs: dict[str, str],
        due_ms: int,
        missing: list[str],
        now_ms: int,
        wait: ReplicaWait | None = None,
    ) -> Stored:
        """Write a refresh's result and release the lock, fenced on the grant generation.

        With `wait`, a rotated refresh token is waited on until a replica holds it (bounded).

        Returns OK, LATE (the lock had passed on; written all the same), GONE or SUPERSEDED
        (the grant was replaced since `account` was read: nothing written).

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
            self.keys.grant_deadlines(part),
            self.keys.scope_sets(part),
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
            account.grant_gen,
            CacheNames.account(account_id),
            *flat(pairs),
        ]
        if wait is not None and F.REFRESH_TOKEN in pairs:  # rotated: a failover must keep it
            result = stored((await wait.run("account_store_tokens", keys, args))[0])
        else:
            result = stored(await self.scripts.run("account_store_tokens", keys, args))
        self.notify(CacheNames.account(account_id))
        return result

    async def mark_reauth(
        self, account: Account, lock_value: str, reason: str, error: dict[str, Any], now_ms: int
    ) -> Marked:
        """Set status reauth_required with its event, fenced on the grant and refresh token read.

        Returns OK when this call changed it, ALREADY when it already was, GONE when the
        account is gone, SUPERSEDED when the failure is stale (the grant or its refresh token
        changed meanwhile).
        """
        part = self.keys.partition_of(account.id)
        keys = [
            self.keys.account(account.id),
            self.keys.lock(account.id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part, Status.REAUTH_REQUIRED),
        ]
        event = await wanted_event(
            self.wants,
            "authenticationError",
            account.id,
            account.app,
            reauth_event_data(account, reason, error),
            now_ms,
        )
        fields = {
            F.STATUS: Status.REAUTH_REQUIRED.value,
            F.REASON: reason,
            F.LAST_ERROR: orjson.dumps(error).decode(),
            F.UPDATED_AT: str(now_ms),
        }
        fence = [account.grant_gen, account.encrypted_refresh or ""]
        name = CacheNames.account(account.id)
        args = [lock_value, account.id, self.keys.invalidations, event, *fence, name, *flat(fields)]
        result = marked(await self.scripts.run("account_mark_reauth", keys, args))
        self.notify(CacheNames.account(account.id))
        return result

    async def note_failure(
        self,
        account: Account,
        lock_value: str,
        error: dict[str, Any],
        retry_ms: int,
        answer_lost_ms: int | None = None,
    ) -> Noted:
        """Record a retryable failure, retry at `retry_ms`, release the lock.

        Returns the attempts so far; GONE when the account is gone, SUPERSEDED when the
        failure is stale.
        """
        part = self.keys.partition_of(account.id)
        keys = [self.keys.account(account.id), self.keys.lock(account.id), self.keys.schedule(part)]
        lost = str(answer_lost_ms) if answer_lost_ms is not None else ""
        args = [
            lock_value,
            orjson.dumps(error).decode(),
            account.id,
            retry_ms,
            account.grant_gen,
            account.encrypted_refresh or "",
            lost,
        ]
        return noted(await self.scripts.run("account_note_failure", keys, args))

    async def delete(self, account: Account, now_ms: int) -> bool:
        """Delete the account and every key of it, recording accountDeleted."""
        part = self.keys.partition_of(account.id)
        keys = [
            self.keys.account(account.id),
            self.keys.lock(account.id),
            self.keys.schedule(part),
            self.keys.events(part),
            self.keys.index(part),
            self.keys.index(part, Status.REAUTH_REQUIRED),
            self.keys.app_counts(part),
            self.keys.search(part),
            self.keys.grant_deadlines(part),
            self.keys.account_resources(account.id),
        ]
        data = {"user": account.user, "provider": account.provider}
        event = await wanted_event(
            self.wants, "accountDeleted", account.id, account.app, data, now_ms
        )
        args = [account.id, self.keys.invalidations, event, CacheNames.account(account.id)]
        deleted = int(await self.scripts.run("account_delete", keys, args)) == 1
        self.notify(CacheNames.account(account.id))
        return deleted

    async def update_profile(self, account_id: str, fields: dict[str, str], now_ms: int) -> bool:
        """Set name/email of an existing account (no new grant); False when it is gone."""
        name = CacheNames.account(account_id)
        pairs = flat({**fields, F.UPDATED_AT: str(now_ms)})
        args = [self.keys.invalidations, name, *pairs]
        done = await self.scripts.run(
            "account_update_profile", [self.keys.account(account_id)], args
        )
        self.notify(name)
        return int(done) == 1

    async def count_by_status(self) -> dict[str, int]:
        """Return how many accounts have each status, summed over partitions."""
        return await self.index.count_by_status()

    async def page(self, page: int, size: int, status: str = "all") -> tuple[int, list[Account]]:
        """Return (total, accounts of the page) ordered by id, merged over partitions."""
        total, ids = await self.index.page(page, size, status)
        return total, await self._load(ids)

    async def find(
        self, prefix: str, page: int, size: int, status: str = "all"
    ) -> tuple[int, list[Account]]:
        """Return (matches, accounts of the page) whose id or user starts with `prefix`."""
        found = await self.search.find(prefix, page, size, status)
        return found.total, await self._load(found.ids)

    async def load(self, ids: list[str]) -> list[Account]:
        """The accounts of these ids that exist, in order, read in one pipeline."""
        return await self._load(ids)

    async def _load(self, ids: list[str]) -> list[Account]:
        async with self.redis.pipeline(transaction=False) as pipe:
            for account_id in ids:
                pipe.hgetall(self.keys.account(account_id))
            records = await pipe.execute()
        expanded = await self.scope_sets.expand(records)
        found = (_the_one(account_from_hash(r), i) for r, i in zip(expanded, ids, strict=True))
        return [a for a in found if a is not None]


def _the_one(account: Account | None, account_id: str) -> Account | None:
    """The account read for `account_id`, or StoreUnavailable when the read answered another.

    A reply that answers another key (a client that lost its place among a connection's
    replies) must never hand one user's record or token to another caller.
    """
    if account is not None and account.id != account_id:
        log.error("account_read_mismatch", account=account_id)
        raise errors.StoreUnavailable("the store answered a read with another account's record")
    return account


__all__ = [
    "STATUSES",
    "Account",
    "AccountStore",
    "AccountWrite",
    "Saved",
    "Status",
    "account_from_hash",
    "reauth_event_data",
]
