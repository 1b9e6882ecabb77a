"""Recording what a provider answered to a refresh: fenced writes, and revoking orphaned tokens.

Every write here is conditional (inside its script) on the grant generation the refresh read.
A result for a grant that was replaced or deleted meanwhile writes nothing, and a refresh
token it carried is revoked at the provider: nobody else will ever use it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog

from service import errors
from service.account_outcomes import Marked, Noted, Stored, Written
from service.accounts import Account, AccountStore, AccountWrite
from service.apps import App, AppStore
from service.clock import Clock, iso
from service.config import Config
from service.credential_retry import with_credentials
from service.grant_deadline import on_refresh
from service.oauth.client import Failure, Granted, OAuthClient
from service.providers import missing_scopes
from service.refresh_lock import HeldLock
from service.store.connection import STORE_ERRORS
from service.store.replicas import ReplicaWait
from service.timing import next_refresh_ms, refresh_retry_ms

log = structlog.get_logger("refresh")
STORE_RETRY_S = 300.0
LOST_ANSWER_ERRORS = ("timeout", "network")


@dataclass(frozen=True)
class Refreshed:
    """The account holds a token valid for the asked time; `called` says if we refreshed it.

    `access_token` is the plaintext token when this call obtained it (no re-decrypt needed).
    """

    account: Account
    called: bool
    access_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class RefreshFailed:
    """The refresh did not succeed; `account` is the state after the attempt."""

    account: Account
    failure: Failure


@dataclass(frozen=True)
class Superseded:
    """The account's grant changed during the refresh: its result was not recorded."""


Outcome = Refreshed | RefreshFailed


class ResultWriter:
    """Writes a refresh's result under the fence; revokes what a superseded result carried."""

    def __init__(
        self,
        accounts: AccountStore,
        apps: AppStore,
        oauth: OAuthClient,
        clock: Clock,
        config: Config,
        incident: Callable[[str], None],
    ) -> None:
        self.accounts, self.apps, self.oauth = accounts, apps, oauth
        self.clock, self.config, self.incident = clock, config, incident
        self.replica_wait = ReplicaWait(
            accounts.redis,
            accounts.scripts,
            config.replica_wait_ms,
            on_timeout=lambda: incident("replica_wait_timeout"),
        )

    async def store(
        self, account: Account, app: App, lock: HeldLock, granted: Granted, sent: str | None
    ) -> Refreshed | Superseded:
        """Store new tokens (`sent` = the refresh token that obtained them, if one did)."""
        now = self.clock.now_ms()
        lifetime_ms = granted.lifetime_s * 1000
        write = AccountWrite(
            access_token=granted.access_token,
            refresh_token=granted.refresh_token,
            previous_refresh_token=sent if granted.refresh_token is not None else None,
            expires_at_ms=granted.expires_at_ms,
            lifetime_ms=lifetime_ms,
            scopes=granted.scopes,
            refreshed_at_ms=now,
            grant_deadline=on_refresh(
                granted.refresh_token is not None, granted.refresh_expires_at_ms
            ),
        )
        pairs = self.accounts.fields(account.id, write, now)
        due = next_refresh_ms(self.config, now, granted.expires_at_ms, lifetime_ms)
        scopes = granted.scopes if granted.scopes is not None else account.scopes
        missing = missing_scopes(app.provider, app.scopes, scopes)
        # Shielded and retried: the provider has rotated the refresh token, so losing this
        # write (a cancelled request, a Redis blip) would lose the account.
        result = await asyncio.shield(self._persist(account, lock, pairs, due, missing, now))
        lock.released = True
        if result == Written.SUPERSEDED:
            current = await self.accounts.get(account.id)
            if current is not None and sent is not None and self._holds(current, sent):
                log.info("refresh_adopted", account=account.id, grant=current.grant_gen)
                return await self.store(current, app, lock, granted, sent)
            await self.orphaned(app, granted, "superseded")
            return Superseded()
        if result == Written.GONE:
            await self.orphaned(app, granted, "deleted")
            raise errors.AccountNotFound(f"account {account.id!r} was deleted during the refresh")
        log.info(
            "refreshed",
            account=account.id,
            expires=iso(granted.expires_at_ms),
            rotated=granted.refresh_token is not None,
            late=result == Written.LATE,
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
            answer_lost_ms=None,
            scopes=scopes,
        )
        return Refreshed(stored, called=True, access_token=granted.access_token)

    def _holds(self, account: Account, refresh_token: str) -> bool:
        """True when the replacing grant holds the very refresh token this refresh used."""
        return account.encrypted_refresh is not None and (
            self.accounts.refresh_token(account) == refresh_token
        )

    async def _persist(
        self,
        account: Account,
        lock: HeldLock,
        pairs: dict[str, str],
        due: int,
        missing: list[str],
        now: int,
    ) -> Stored:
        """store_tokens, retried while Redis is unreachable (up to STORE_RETRY_S)."""
        deadline = time.monotonic() + STORE_RETRY_S
        for attempt in itertools.count(1):
            try:
                return await self.accounts.store_tokens(
                    account, lock.value, pairs, due, missing, now, self.replica_wait
                )
            except STORE_ERRORS as exc:
                if time.monotonic() > deadline:
                    log.error("rotated_tokens_not_stored", account=account.id)
                    raise
                log.warning("store_retry", account=account.id, error=type(exc).__name__)
                await asyncio.sleep(min(0.1 * attempt, 1.0))
        raise AssertionError("unreachable")

    async def fail(
        self, account: Account, app: App, lock: HeldLock, failure: Failure
    ) -> RefreshFailed | Superseded:
        """Record a failure: reauth for a permanent one, a retry time for the others."""
        now = self.clock.now_ms()
        error = {**failure.details(), "time": iso(now)}
        result: Marked | Noted
        if failure.kind == "permanent":
            reason = failure.reason or "invalidGrant"
            result = await self.accounts.mark_reauth(account, lock.value, reason, error, now)
        else:
            lost = failure.sent and failure.error in LOST_ANSWER_ERRORS
            retry = now + retry_delay_ms(failure, account.attempts + 1)
            result = await self.accounts.note_failure(
                account, lock.value, error, retry, now if lost else None
            )
        lock.released = True
        if result == Written.GONE:
            raise errors.AccountNotFound(f"account {account.id!r} was deleted during the refresh")
        if result == Written.SUPERSEDED:
            log.info("refresh_failure_stale", account=account.id, error=failure.error)
            return Superseded()
        if failure.kind == "app":
            await self.apps.set_error(app, error, now)
        log.warning(
            "refresh_failed",
            account=account.id,
            kind=failure.kind,
            error=failure.error,
            status=failure.status,
            reason=failure.reason,
            sent=failure.sent,
        )
        return RefreshFailed(await self.accounts.require(account.id), failure)

    async def orphaned(self, app: App, granted: Granted, why: str) -> None:
        """Revoke a refresh token obtained for a grant that no longer exists (best effort)."""
        if granted.refresh_token is None:
            return
        self.incident("orphan_revoked")
        token = granted.refresh_token
        outcome = await with_credentials(
            self.apps, app, lambda credential: self.oauth.revoke(app, credential, token)
        )
        log.info(
            "orphan_refresh_token_revoked" if outcome.revoked else "orphan_refresh_token_kept",
            why=why,
            reason=outcome.reason,
        )


def retry_delay_ms(failure: Failure, attempt: int) -> int:
    """How long to wait before retrying after a failure (service.timing.refresh_retry_ms)."""
    return refresh_retry_ms(failure.kind, attempt, failure.retry_after_s)
