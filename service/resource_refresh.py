"""Per-resource tokens obtained with the account's one refresh token, under its lock and fence.

The same lock as the account's own refresh: at most one process presents the refresh token at
a time, whatever resource it asks for, and it presents the latest one (read under the lock). A
rotated refresh token is stored in the same script as the resource's token, fenced on the
grant generation, so that rotation through any resource updates the one stored refresh token.

A provider's refusal of the resource (no consent for it, invalid_scope, a policy for that
resource) is answered without touching the account. A refusal that may concern the grant
itself (invalid_grant for any other reason) is checked with the account's own refresh, which
marks the account for re-consent only when the grant really is dead, and rescues it with the
previous refresh token where it can.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from dataclasses import dataclass

import structlog

from service import errors
from service.account_outcomes import Stored, Written
from service.accounts import Account, Status
from service.apps import App
from service.credential_retry import with_credentials
from service.oauth.client import Failure, Granted, RefreshResult
from service.refresh import (
    ENDPOINTS_CHANGED,
    IN_PROGRESS,
    LOCK_POLL_S,
    MAX_SUPERSEDED,
    Refresher,
)
from service.refresh_lock import AnswerAbandoned, HeldLock, take_durably, wait_released
from service.refresh_results import STORE_RETRY_S, RefreshFailed, Superseded
from service.resource_tokens import ResourceToken, ResourceTokens
from service.resources import Resource
from service.store.connection import STORE_ERRORS

log = structlog.get_logger("refresh")
RESOURCE_REASONS = frozenset({"consentRequired", "interactionRequired", "conditionalAccess"})


@dataclass(frozen=True)
class Served:
    """The resource's token, valid for the asked time; `called`: this call obtained it."""

    account: Account
    token: ResourceToken
    called: bool


@dataclass(frozen=True)
class GrantRefused:
    """The provider refused the refresh token itself, it seems: check it with a refresh."""

    account: Account
    failure: Failure


ResourceOutcome = Served | RefreshFailed


def resource_refusal(failure: Failure) -> bool:
    """True when the provider refused the resource, not the grant (the account stays)."""
    if failure.kind != "permanent":
        return False
    return failure.error != "invalid_grant" or failure.reason in RESOURCE_REASONS


class ResourceRefresher:
    """Serves per-resource tokens, refreshing them with the account's refresh token."""

    def __init__(self, refresher: Refresher, store: ResourceTokens) -> None:
        self.refresher, self.store = refresher, store
        self.accounts, self.apps = refresher.accounts, refresher.apps
        self.config, self.clock = refresher.config, refresher.clock
        self._background: set[asyncio.Task[None]] = set()

    async def fresh(
        self, account_id: str, resource: Resource, min_valid_ms: int
    ) -> ResourceOutcome:
        """The resource's token valid for `min_valid_ms`, refreshing it at most once or twice."""
        checked = False
        for _ in range(MAX_SUPERSEDED):
            outcome = await self._locked(account_id, resource, min_valid_ms)
            if isinstance(outcome, GrantRefused):
                if checked:  # the grant works (its refresh said so): the resource is refused
                    return RefreshFailed(outcome.account, outcome.failure)
                checked = True
                grant = await self.refresher.refresh(account_id, 0, force=True)
                if isinstance(grant, RefreshFailed):
                    return grant
                continue  # the grant is alive (or rescued): ask for the resource once more
            if not isinstance(outcome, Superseded):
                return outcome
        account = await self.accounts.require(account_id)
        busy = Failure("transient", "superseded", "the account's grant keeps changing")
        return RefreshFailed(account, busy)

    async def _locked(
        self, account_id: str, resource: Resource, min_valid_ms: int
    ) -> ResourceOutcome | Superseded | GrantRefused:
        deadline = time.monotonic() + self.config.provider_timeout_s + 2
        lock_key = self.refresher.keys.lock(account_id)
        redis, wait = self.refresher.redis, self.refresher.results.replica_wait
        while True:
            value = secrets.token_hex(16)
            lock = await take_durably(wait, lock_key, value, self.config.lock_ms)
            if lock is not None:
                try:
                    return await self._with_lock(account_id, lock, resource, min_valid_ms)
                finally:
                    await asyncio.shield(lock.release(self._background))
            released = await wait_released(redis, lock_key, deadline, LOCK_POLL_S)
            account = await self.accounts.require(account_id)
            if not released:
                return RefreshFailed(account, IN_PROGRESS)
            held = await self.store.get(account, resource.slot)
            if held is not None and held.expires_at_ms - self.clock.now_ms() >= min_valid_ms:
                return Served(account, held, called=False)

    async def _with_lock(
        self, account_id: str, lock: HeldLock, resource: Resource, min_valid_ms: int
    ) -> ResourceOutcome | Superseded | GrantRefused:
        account = await self.accounts.require(account_id)
        if account.status != Status.ACTIVE:
            error = account.last_error or {}
            failure = Failure("permanent", str(error.get("error", "reauth_required")))
            return RefreshFailed(account, failure)
        held = await self.store.get(account, resource.slot)
        if held is not None and held.expires_at_ms - self.clock.now_ms() >= min_valid_ms:
            return Served(account, held, called=False)
        app = await self.apps.cached(account.app)
        if account.app_endpoints and account.app_endpoints != app.endpoints_fingerprint:
            return await self.refresher.results.fail(account, app, lock, ENDPOINTS_CHANGED)
        sent = self.accounts.refresh_token(account)
        result = await self._call(app, sent, resource, lock)
        if isinstance(result, Granted):
            return await self._store(account, app, lock, resource, result, sent)
        if resource_refusal(result):
            log.warning(
                "resource_refused",
                account=account.id,
                resource=resource.name,
                error=result.error,
                reason=result.reason,
            )
            return RefreshFailed(account, result)
        if result.kind == "permanent":
            log.warning("resource_refresh_refused_grant", account=account.id, error=result.error)
            return GrantRefused(account, result)
        return await self.refresher.results.fail(account, app, lock, result)

    async def _call(self, app: App, sent: str, resource: Resource, lock: HeldLock) -> RefreshResult:
        """The refresh asking the resource's scopes, awaited while the lock is ours."""
        oauth = self.refresher.oauth
        call = with_credentials(
            self.apps, app, lambda credential: oauth.refresh(app, credential, sent, resource.sent)
        )
        try:
            return await lock.hold_during(call, self.config.provider_answer_max_s)
        except AnswerAbandoned:
            return Failure("transient", "timeout", "the provider did not answer in time", sent=True)

    async def _store(
        self,
        account: Account,
        app: App,
        lock: HeldLock,
        resource: Resource,
        granted: Granted,
        sent: str,
    ) -> Served | Superseded:
        scopes = granted.scopes if granted.scopes is not None else list(resource.scopes)
        token = ResourceToken(granted.access_token, granted.expires_at_ms, scopes)
        rotated = (granted.refresh_token, sent) if granted.refresh_token is not None else None
        results = self.refresher.results
        # Shielded and retried, as a refresh's result: the provider may have rotated the
        # refresh token, so losing this write would lose the account.
        result = await asyncio.shield(self._persist(account, lock, resource, token, rotated))
        lock.released = True
        if result == Written.SUPERSEDED:
            await results.orphaned(app, granted, "superseded")
            return Superseded()
        if result == Written.GONE:
            await results.orphaned(app, granted, "deleted")
            raise errors.AccountNotFound(f"account {account.id!r} was deleted during the refresh")
        log.info(
            "resource_refreshed",
            account=account.id,
            resource=resource.name,
            rotated=rotated is not None,
            late=result == Written.LATE,
        )
        return Served(account, token, called=True)

    async def _persist(
        self,
        account: Account,
        lock: HeldLock,
        resource: Resource,
        token: ResourceToken,
        rotated: tuple[str, str] | None,
    ) -> Stored:
        """The store script, retried while Redis is unreachable (up to STORE_RETRY_S)."""
        deadline = time.monotonic() + STORE_RETRY_S
        wait = self.refresher.results.replica_wait
        for attempt in itertools.count(1):
            try:
                return await self.store.store(
                    account, lock.value, resource.slot, token, rotated, self.clock.now_ms(), wait
                )
            except STORE_ERRORS as exc:
                if time.monotonic() > deadline:
                    log.error("rotated_tokens_not_stored", account=account.id)
                    raise
                log.warning("store_retry", account=account.id, error=type(exc).__name__)
                await asyncio.sleep(min(0.1 * attempt, 1.0))
        raise AssertionError("unreachable")
