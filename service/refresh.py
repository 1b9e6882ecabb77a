"""Single-flight refresh of one account under its Redis lock, shared by web and workers."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import secrets
import time
from dataclasses import dataclass

import orjson
import structlog
from redis.asyncio import Redis

from service import errors
from service.accounts import Account, AccountStore
from service.apps import App, AppStore
from service.backoff import backoff_ms
from service.clock import Clock, iso
from service.config import Config
from service.expiry import next_refresh_ms
from service.keys import Keys
from service.oauth import Failure, Granted, OAuthClient
from service.providers import missing_scopes
from service.redisconn import STORE_ERRORS

log = structlog.get_logger("refresh")
LOCK_POLL_S = 0.02
STORE_RETRY_S = 300.0


@dataclass(frozen=True)
class Refreshed:
    """The account holds a token valid for the asked time; `called` says if we refreshed it."""

    account: Account
    called: bool


@dataclass(frozen=True)
class RefreshFailed:
    """The refresh did not succeed; `account` is the state after the attempt."""

    account: Account
    failure: Failure


Outcome = Refreshed | RefreshFailed


class Refresher:
    """Refreshes accounts so that at most one process calls the provider per account."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        accounts: AccountStore,
        apps: AppStore,
        oauth: OAuthClient,
        clock: Clock,
        config: Config,
    ) -> None:
        self.redis, self.keys, self.accounts, self.apps = redis, keys, accounts, apps
        self.oauth, self.clock, self.config = oauth, clock, config
        self._inflight: dict[tuple[str, int, bool], asyncio.Future[Outcome]] = {}

    async def refresh(self, account_id: str, min_valid_ms: int, *, force: bool = False) -> Outcome:
        """Make the account's token valid for `min_valid_ms`, refreshing at most once."""
        key = (account_id, min_valid_ms, force)
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            outcome = await self._refresh_locked(account_id, min_valid_ms, force)
            future.set_result(outcome)
            return outcome
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            del self._inflight[key]

    async def _refresh_locked(self, account_id: str, min_valid_ms: int, force: bool) -> Outcome:
        deadline = time.monotonic() + self.config.provider_timeout_s + 2
        lock_key = self.keys.lock(account_id)
        while True:
            value = secrets.token_hex(16)
            if await self.redis.set(lock_key, value, nx=True, px=self.config.lock_ms):
                return await self._with_lock(account_id, value, min_valid_ms, force)
            while await self.redis.exists(lock_key):
                if time.monotonic() > deadline:
                    account = await self.accounts.require(account_id)
                    busy = Failure("transient", "refresh_in_progress", "another refresh is running")
                    return RefreshFailed(account, busy)
                await asyncio.sleep(LOCK_POLL_S)
            account = await self.accounts.require(account_id)
            if account.valid_for_ms(self.clock.now_ms()) >= min_valid_ms and not force:
                return Refreshed(account, called=False)
            force = False  # someone else refreshed it while we waited; only stale tokens go again

    async def _with_lock(
        self, account_id: str, lock: str, min_valid_ms: int, force: bool
    ) -> Outcome:
        try:
            account = await self.accounts.require(account_id)
            if account.status != "active":
                await self._release(account_id, lock)
                return RefreshFailed(account, _reauth_failure(account))
            if not force and account.valid_for_ms(self.clock.now_ms()) >= min_valid_ms:
                await self._release(account_id, lock)
                return Refreshed(account, called=False)
            app = await self.apps.cached(account.app)
            result = await self.oauth.refresh(
                app, self.apps.client_secret(app), self.accounts.refresh_token(account)
            )
        except BaseException:
            await self._release(account_id, lock)
            raise
        if isinstance(result, Granted):
            outcome = await self._store(account, app, lock, result)
            if "error" in app.fields:  # the app's credentials work again
                await self.apps.set_error(app, None, self.clock.now_ms())
            return outcome
        return await self._fail(account, app, lock, result)

    async def _store(self, account: Account, app: App, lock: str, granted: Granted) -> Outcome:
        now = self.clock.now_ms()
        lifetime_ms = granted.lifetime_s * 1000
        pairs = self.accounts.token_fields(account.id, granted.access_token, granted.refresh_token)
        pairs.update(
            {
                "expiresAt": str(granted.expires_at_ms),
                "lifetimeMs": str(lifetime_ms),
                "refreshedAt": str(now),
                "updatedAt": str(now),
                "attempts": "0",
            }
        )
        if granted.scopes is not None:
            pairs["scopes"] = orjson.dumps(granted.scopes).decode()
        due = next_refresh_ms(self.config, now, granted.expires_at_ms, lifetime_ms)
        granted_scopes = granted.scopes if granted.scopes is not None else account.scopes
        missing = missing_scopes(app.provider, app.scopes, granted_scopes)
        # Shielded and retried: the provider has rotated the refresh token, so losing this
        # write (a cancelled request, a Redis blip) would lose the account.
        result = await asyncio.shield(self._persist(account, lock, pairs, due, missing, now))
        if result == "gone":
            raise errors.AccountNotFound(f"account {account.id!r} was deleted during the refresh")
        log.info(
            "refreshed",
            account=account.id,
            expires=iso(granted.expires_at_ms),
            rotated=granted.refresh_token is not None,
            late=result == "late",
        )
        stored = dataclasses.replace(
            account,
            encrypted_access=pairs["accessToken"],
            encrypted_refresh=pairs.get("refreshToken", account.encrypted_refresh),
            expires_at_ms=granted.expires_at_ms,
            lifetime_ms=lifetime_ms,
            refreshed_at_ms=now,
            updated_ms=now,
            attempts=0,
            last_error=None,
            reason=None,
            scopes=granted_scopes,
        )
        return Refreshed(stored, called=True)

    async def _persist(
        self,
        account: Account,
        lock: str,
        pairs: dict[str, str],
        due: int,
        missing: list[str],
        now: int,
    ) -> str:
        """store_tokens, retried while Redis is unreachable (up to STORE_RETRY_S)."""
        deadline = time.monotonic() + STORE_RETRY_S
        for attempt in itertools.count(1):
            try:
                return await self.accounts.store_tokens(account, lock, pairs, due, missing, now)
            except STORE_ERRORS as exc:
                if time.monotonic() > deadline:
                    log.error("rotated_tokens_not_stored", account=account.id)
                    raise
                log.warning("store_retry", account=account.id, error=type(exc).__name__)
                await asyncio.sleep(min(0.1 * attempt, 1.0))
        raise AssertionError("unreachable")

    async def _fail(self, account: Account, app: App, lock: str, failure: Failure) -> Outcome:
        now = self.clock.now_ms()
        error = {**failure.details(), "time": iso(now)}
        if failure.kind == "permanent":
            await self.accounts.mark_reauth(
                account, lock, failure.reason or "invalidGrant", error, now
            )
        else:
            retry = now + retry_delay_ms(failure, account.attempts + 1)
            await self.accounts.note_failure(account.id, lock, error, retry)
            if failure.kind == "app":
                await self.apps.set_error(app, error, now)
        log.warning(
            "refresh_failed",
            account=account.id,
            kind=failure.kind,
            error=failure.error,
            status=failure.status,
            reason=failure.reason,
        )
        return RefreshFailed(await self.accounts.require(account.id), failure)

    async def _release(self, account_id: str, lock: str) -> None:
        try:
            await self.accounts.scripts.run("lock_release", [self.keys.lock(account_id)], [lock])
        except Exception:  # the lock's TTL frees it anyway; report and go on
            log.warning("lock_release_failed", account=account_id)


def retry_delay_ms(failure: Failure, attempt: int) -> int:
    """How long to wait before retrying after a failure: app-level failures retry slowly."""
    if failure.kind == "app":
        return backoff_ms(attempt, base_ms=60_000, cap_ms=3_600_000)
    return backoff_ms(attempt, retry_after_s=failure.retry_after_s)


def _reauth_failure(account: Account) -> Failure:
    error = account.last_error or {}
    return Failure(
        "permanent",
        str(error.get("error", "reauth_required")),
        error.get("error_description"),
        reason=account.reason,
    )
