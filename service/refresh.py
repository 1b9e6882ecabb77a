"""Single-flight refresh of one account under its Redis lock, shared by web and workers."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from redis.asyncio import Redis

from service.accounts import Account, AccountStore, Status
from service.app_tokens import AppTokens
from service.apps import App, AppStore
from service.clock import Clock
from service.config import Config
from service.credential_retry import with_credentials
from service.grants import Grants, grant_type
from service.oauth.client import Failure, Granted, OAuthClient, RefreshResult
from service.ratelimit import AppRateLimit
from service.refresh_lock import AnswerAbandoned, HeldLock, take_durably, wait_released
from service.refresh_results import (
    Outcome,
    Refreshed,
    RefreshFailed,
    ResultWriter,
    Superseded,
    retry_delay_ms,
)
from service.store.keys import Keys
from service.tracing import Tracing

log = structlog.get_logger("refresh")
LOCK_POLL_S = 0.02
IN_PROGRESS = Failure("transient", "refresh_in_progress", "another refresh is running")
PENDING_RETRY_AFTER_S = 2  # what a caller whose on-demand refresh outlived its wait is told
MAX_SUPERSEDED = 3  # a grant replaced this often during one request is left for next time
ENDPOINTS_CHANGED = Failure(
    "permanent",
    "endpoints_changed",
    "the app's endpoints changed since this account was connected",
    reason="appEndpointsChanged",
)


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
        tracing: Tracing | None = None,
    ) -> None:
        self.redis, self.keys, self.accounts, self.apps = redis, keys, accounts, apps
        self.oauth, self.clock, self.config = oauth, clock, config
        self.tracing = tracing or Tracing()
        self.incident: Callable[[str], None] = lambda kind: None  # a metrics hook
        self.results = ResultWriter(accounts, apps, oauth, clock, config, self._incident)
        self.rate = AppRateLimit(keys, accounts.scripts, config.app_rate_per_s)
        app_tokens = AppTokens(
            redis, keys, accounts.scripts, apps.cipher, oauth, clock,
            config.lock_ms, config.provider_timeout_s + 2,
        )  # fmt: skip
        self.grants = Grants(apps, oauth, app_tokens, clock)
        self._inflight: dict[tuple[str, int, bool], asyncio.Task[Outcome]] = {}
        self._app_slots: defaultdict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(config.web_refresh_concurrency)
        )
        self._background: set[asyncio.Task[None]] = set()  # late lock releases

    def _incident(self, kind: str) -> None:
        self.incident(kind)

    async def refresh(
        self, account_id: str, min_valid_ms: int, *, force: bool = False, app: str | None = None
    ) -> Outcome:
        """Make the account's token valid for `min_valid_ms`, refreshing at most once.

        With `app` (an on-demand refresh of the web process), the call first takes one of the
        app's slots and a token of its rate limit, and the caller waits at most the provider
        timeout: then it gets a transient `refresh_pending` failure (the valid token is served,
        or 503 with Retry-After) while the refresh goes on and stores what it gets.
        """
        key = (account_id, min_valid_ms, force)
        running = self._inflight.get(key)
        if running is None:
            # A task of its own, awaited through a shield: a caller that goes away (a client
            # hanging up, a cancelled request) never abandons a refresh that may be at the
            # provider; it runs on, stores what comes back and frees the lock.
            running = asyncio.ensure_future(self._gated(account_id, min_valid_ms, force, app))
            self._inflight[key] = running
            running.add_done_callback(lambda task: self._finished(key, task))
        if app is None:
            return await asyncio.shield(running)
        try:
            return await asyncio.wait_for(asyncio.shield(running), self.config.provider_timeout_s)
        except TimeoutError:
            account = await self.accounts.require(account_id)
            pending = Failure(
                "transient",
                "refresh_pending",
                "the provider is slow; the refresh goes on",
                retry_after_s=PENDING_RETRY_AFTER_S,
            )
            return RefreshFailed(account, pending)

    def _finished(self, key: tuple[str, int, bool], task: asyncio.Task[Outcome]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.debug("refresh_raised", error=type(task.exception()).__name__)

    async def _gated(
        self, account_id: str, min_valid_ms: int, force: bool, app: str | None
    ) -> Outcome:
        if app is None:
            return await self._fenced(account_id, min_valid_ms, force)
        async with self._on_demand_slot(app) as ready:
            if not ready:
                account = await self.accounts.require(account_id)
                busy = Failure(
                    "transient", "busy", "too many refreshes for this app", retry_after_s=1
                )
                return RefreshFailed(account, busy)
            return await self._fenced(account_id, min_valid_ms, force)

    @contextlib.asynccontextmanager
    async def _on_demand_slot(self, app: str) -> AsyncIterator[bool]:
        """One of the app's on-demand slots and a rate-limit token, within the provider timeout."""
        deadline = time.monotonic() + self.config.provider_timeout_s
        slot = self._app_slots[app]
        try:
            await asyncio.wait_for(slot.acquire(), self.config.provider_timeout_s)
        except TimeoutError:
            yield False
            return
        try:
            while (wait_ms := await self.rate.wait_ms(app, self.clock.now_ms())) > 0:
                if time.monotonic() + wait_ms / 1000 > deadline:
                    yield False
                    return
                await asyncio.sleep(wait_ms / 1000)
            yield True
        finally:
            slot.release()

    async def _fenced(self, account_id: str, min_valid_ms: int, force: bool) -> Outcome:
        """Refresh; when the grant was replaced meanwhile, look again at the new grant."""
        for _ in range(MAX_SUPERSEDED):
            outcome = await self._refresh_locked(account_id, min_valid_ms, force)
            if not isinstance(outcome, Superseded):
                return outcome
            force = False  # the new grant's token may already do
        account = await self.accounts.require(account_id)
        busy = Failure("transient", "superseded", "the account's grant keeps changing")
        return RefreshFailed(account, busy)

    async def _refresh_locked(
        self, account_id: str, min_valid_ms: int, force: bool
    ) -> Outcome | Superseded:
        deadline = time.monotonic() + self.config.provider_timeout_s + 2
        lock_key = self.keys.lock(account_id)
        while True:
            value = secrets.token_hex(16)
            with self.tracing.span("lock") as span:
                lock = await take_durably(
                    self.results.replica_wait, lock_key, value, self.config.lock_ms
                )
                span.set_attribute("lock.taken", lock is not None)
            if lock is not None:
                try:
                    return await self._with_lock(account_id, lock, min_valid_ms, force)
                finally:
                    await asyncio.shield(lock.release(self._background))
            released = await wait_released(self.redis, lock_key, deadline, LOCK_POLL_S)
            account = await self.accounts.require(account_id)
            if not released:
                return RefreshFailed(account, IN_PROGRESS)
            if account.valid_for_ms(self.clock.now_ms()) >= min_valid_ms and not force:
                return Refreshed(account, called=False)
            force = False  # someone else refreshed it while we waited; only stale tokens go again

    async def _with_lock(
        self, account_id: str, lock: HeldLock, min_valid_ms: int, force: bool
    ) -> Outcome | Superseded:
        account = await self.accounts.require(account_id)
        if account.status != Status.ACTIVE:
            return RefreshFailed(account, _reauth_failure(account))
        if not force and account.valid_for_ms(self.clock.now_ms()) >= min_valid_ms:
            return Refreshed(account, called=False)
        app = await self.apps.cached(account.app)
        if account.app_endpoints and account.app_endpoints != app.endpoints_fingerprint:
            log.error("refresh_refused_endpoints_changed", account=account.id, app=app.id)
            return await self.results.fail(account, app, lock, ENDPOINTS_CHANGED)
        sent: str | None = None  # the refresh token sent (none for the application grants)
        if grant_type(app.provider) != "refresh_token":
            result = await self._held(lock, self.grants.service_token(app, account, min_valid_ms))
        else:
            sent = self.accounts.refresh_token(account)
            result = await self._call(app, sent, lock)
        if (
            sent is not None
            and isinstance(result, Failure)
            and _worth_the_previous(result, account)
        ):
            result, sent = await self._try_previous(account, app, lock, result, sent)
        with self.tracing.span("store") as span:
            span.set_attribute("refresh.granted", isinstance(result, Granted))
            if isinstance(result, Granted):
                outcome = await self.results.store(account, app, lock, result, sent)
                if "error" in app.fields:  # the app's credentials work again
                    await self.apps.set_error(app, None, self.clock.now_ms())
                return outcome
            return await self.results.fail(account, app, lock, result)

    async def _call(self, app: App, refresh_token: str, lock: HeldLock) -> RefreshResult:
        """The provider call, awaited while the lock is ours (see HeldLock.hold_during)."""
        with self.tracing.span("provider call") as span:
            span.set_attribute("app.id", app.id)
            call = with_credentials(
                self.apps,
                app,
                lambda credential: self.oauth.refresh(app, credential, refresh_token),
            )
            result = await self._held(lock, call)
            span.set_attribute("refresh.result", _result_name(result))
            return result

    async def _held(self, lock: HeldLock, call: Awaitable[RefreshResult]) -> RefreshResult:
        """A provider call awaited while the lock is ours."""
        try:
            return await lock.hold_during(call, self.config.provider_answer_max_s)
        except AnswerAbandoned:
            self._incident("answer_abandoned")
            return Failure("transient", "timeout", "the provider did not answer in time", sent=True)

    async def _try_previous(
        self, account: Account, app: App, lock: HeldLock, failure: Failure, sent: str
    ) -> tuple[RefreshResult, str]:
        """A refused refresh token gets one more check: the previous one, kept beside it.

        It rescues a grant whose latest rotation was lost (an answer that never came, a
        write a failover dropped) or that came back from an older backup, wherever the
        provider still honours the token before (Microsoft does not retire it on use).
        """
        previous = self.accounts.previous_refresh_token(account)
        lost = account.answer_lost_ms is not None
        log.warning(
            "refresh_refused_after_lost_answer" if lost else "refresh_refused_trying_previous",
            account=account.id,
            error=failure.error,
            previous=previous is not None,
        )
        self._incident("refused_after_lost_answer" if lost else "refused_trying_previous")
        if previous is None or previous == sent:
            return failure, sent
        result = await self._call(app, previous, lock)
        if isinstance(result, Granted):
            log.warning("refresh_recovered_with_previous_token", account=account.id)
            self._incident("recovered_with_previous")
            return result, previous
        return failure, sent


def _worth_the_previous(failure: Failure, account: Account) -> bool:
    """A refused refresh token (invalid_grant, or anything final after a lost answer)."""
    if failure.kind != "permanent":
        return False
    return account.answer_lost_ms is not None or failure.error == "invalid_grant"


def _result_name(result: RefreshResult) -> str:
    """A provider call's result for a span: `granted`, or the failure's kind and error code."""
    return "granted" if isinstance(result, Granted) else f"{result.kind}:{result.error}"


def outcome_name(outcome: Outcome) -> str:
    """A refresh's outcome for a span or a log: refreshed, skipped, or the failure's kind."""
    if isinstance(outcome, Refreshed):
        return "refreshed" if outcome.called else "skipped"
    return outcome.failure.kind


def _reauth_failure(account: Account) -> Failure:
    error = account.last_error or {}
    return Failure(
        "permanent",
        str(error.get("error", "reauth_required")),
        error.get("error_description"),
        reason=account.reason,
    )


__all__ = [
    "Outcome",
    "RefreshFailed",
    "Refreshed",
    "Refresher",
    "outcome_name",
    "retry_delay_ms",
]
