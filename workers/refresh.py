"""The refresh loop: claims due accounts from the schedule and refreshes them ahead of expiry."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

import structlog

from service import errors
from service.accounts import Account, Status
from service.config import Config
from service.core import Core
from service.metrics import Metrics
from service.ratelimit import AppRateLimit
from service.refresh import Outcome, Refreshed
from service.schedule import Schedule, new_claim_id
from service.store.connection import STORE_ERRORS
from service.timing import claimed_refresh_rule, known_lifetime_ms, next_refresh_ms

log = structlog.get_logger("worker.refresh")


def lifetime_ms(account: Account) -> int:
    """The account's token lifetime as last granted (a default when unknown)."""
    return known_lifetime_ms(account.lifetime_ms, account.expires_at_ms, account.refreshed_at_ms)


def refresh_policy(account: Account, now_ms: int, config: Config) -> tuple[int, bool]:
    """For a claimed account: (min validity below which to refresh, force a keep-alive)."""
    last = account.refreshed_at_ms or account.created_ms or 0
    return claimed_refresh_rule(lifetime_ms(account), last, now_ms, config)


@dataclass
class ClaimPlan:
    """One claim round: the partitions in the order asked, and each call's claim id."""

    order: list[int]
    ids: dict[tuple[int, int], str] = field(default_factory=dict)  # (pass, partition) -> id


class RefreshLoop:
    """Claims due accounts fairly over partitions and refreshes them with bounded concurrency."""

    def __init__(self, core: Core, metrics: Metrics, config: Config) -> None:
        self.core, self.metrics, self.config = core, metrics, config
        self.schedule = Schedule(core.redis, core.keys, core.scripts)
        self.rate = AppRateLimit(core.keys, core.scripts, config.app_rate_per_s)
        self.tasks: set[asyncio.Task[None]] = set()
        self.at_provider: set[asyncio.Task[None]] = set()  # past the point of handing back
        self.stopping = asyncio.Event()
        self.slot_free = asyncio.Event()
        self.beats = 0  # successful claim rounds, for the heartbeat
        self._start = 0
        self._unfinished: ClaimPlan | None = None  # the round a store error interrupted
        self.claimed_ns = (0, 0)  # when the last claim round started and ended (for its span)

    def stop(self) -> None:
        """Stop claiming; what is in flight finishes or is handed back."""
        self.stopping.set()

    async def run(self, burst: bool = False) -> None:
        """Claim and refresh until stopped; in burst mode, until nothing is due."""
        store_down = False
        while not self.stopping.is_set():
            try:
                claimed = await self.claim_round()
            except STORE_ERRORS as exc:
                if not store_down:
                    log.warning("store_unavailable", error=type(exc).__name__)
                store_down = True
                if burst:
                    raise
                await self._pause(self.config.poll_ms / 1000)
                continue
            if store_down:
                log.info("store_available")
                store_down = False
            self.beats += 1
            for account, due in claimed:
                self._spawn(account, due)
            if burst:
                if not claimed and not self.tasks:
                    return
                await asyncio.gather(*self.tasks)
            elif len(self.tasks) >= self.config.worker_concurrency:
                self.slot_free.clear()
                await self._wait_event(self.slot_free, self.config.poll_ms / 1000)
            elif not claimed:
                await self._pause(self.config.poll_ms / 1000)
        await self.drain()

    async def claim_round(self) -> list[tuple[str, int]]:
        """Claim due accounts for the free slots: a fair share of each partition first.

        A round that a store error interrupted is repeated with the same partition order and
        claim ids: claims whose reply was lost come back instead of waiting out the lease.
        """
        free = self.config.worker_concurrency - len(self.tasks)
        if free <= 0:
            return []
        plan = self._unfinished or self._next_plan()
        now, lease = self.core.clock.now_ms(), self.config.lease_ms
        claimed: list[tuple[str, int]] = []
        share = max(1, free // len(plan.order))
        started_ns = time.time_ns()
        try:
            for step, limit in enumerate((share, free)):
                for part in plan.order:
                    room = min(limit, free - len(claimed))
                    if room > 0:
                        claim_id = plan.ids.setdefault((step, part), new_claim_id())
                        claimed += await self.schedule.claim(part, now, lease, room, claim_id)
        except STORE_ERRORS:
            self._unfinished = plan
            raise
        self._unfinished = None
        self.claimed_ns = (started_ns, time.time_ns())
        return claimed

    def _next_plan(self) -> ClaimPlan:
        parts = self.core.keys.partitions
        order = [(self._start + i) % parts for i in range(parts)]
        self._start = (self._start + 1) % parts
        return ClaimPlan(order)

    async def drain(self) -> None:
        """Let in-flight refreshes finish within the grace period, then hand back the rest.

        A refresh already at the provider is never cancelled: the provider may rotate the
        refresh token, and only finishing the call stores the new one.
        """
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=self.config.shutdown_grace_s)
        for task in list(self.tasks - self.at_provider):
            task.cancel()
        if self.tasks:
            await asyncio.wait(self.tasks)

    def _spawn(self, account: str, due: int) -> None:
        task = asyncio.create_task(self._refresh_one(account, due, self.claimed_ns))
        self.tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.tasks.discard(task)
        self.at_provider.discard(task)
        self.slot_free.set()

    async def _refresh_one(self, account_id: str, due: int, claimed_ns: tuple[int, int]) -> None:
        """Refresh one claimed account in a span that starts with its claim."""
        tracing = self.core.tracing
        with tracing.span("worker refresh", start_ns=claimed_ns[0] or None) as span:
            span.set_attribute("account.id", account_id)
            tracing.child_at("claim", *claimed_ns)
            await self._refresh_logged(account_id, due)

    async def _refresh_logged(self, account_id: str, due: int) -> None:
        structlog.contextvars.bind_contextvars(account=account_id)
        try:
            await self._process(account_id, due)
        except asyncio.CancelledError:
            await asyncio.shield(self._hand_back(account_id, due))
            raise
        except STORE_ERRORS as exc:  # the lease brings the account back
            log.warning("refresh_store_error", error=type(exc).__name__)
        except errors.AccountNotFound:  # deleted meanwhile: an ordinary outcome
            log.info("refresh_account_deleted")
        except Exception:
            log.exception("refresh_crashed")

    async def _process(self, account_id: str, due: int) -> None:
        now = self.core.clock.now_ms()
        self.metrics.lag_seconds.observe(max(0, now - due) / 1000)
        account = await self.core.accounts.get(account_id)
        if account is None or account.status != Status.ACTIVE:
            await self.schedule.remove(account_id)
            return
        structlog.contextvars.bind_contextvars(attempt=account.attempts + 1)
        if not await self._take_rate_slot(account.app):
            await self._hand_back(account_id, due)
            return
        min_valid, force = refresh_policy(account, self.core.clock.now_ms(), self.config)
        started = time.perf_counter()
        task = asyncio.current_task()
        if task is not None:
            self.at_provider.add(task)
        outcome = await self.core.refresher.refresh(account_id, min_valid, force=force)
        self._record(account, outcome, time.perf_counter() - started)
        if isinstance(outcome, Refreshed) and not outcome.called:
            await self._reschedule(outcome.account)

    async def _take_rate_slot(self, app: str) -> bool:
        """Wait for the app's rate limit; False when the worker stops meanwhile."""
        while (wait_ms := await self.rate.wait_ms(app, self.core.clock.now_ms())) > 0:
            await self._pause(min(wait_ms, 1000) / 1000)
            if self.stopping.is_set():
                return False
        return True

    async def _reschedule(self, account: Account) -> None:
        now = self.core.clock.now_ms()
        due = next_refresh_ms(self.config, now, account.expires_at_ms, lifetime_ms(account))
        await self.schedule.move(account.id, due)

    async def _hand_back(self, account_id: str, due: int) -> None:
        try:
            await self.schedule.move(account_id, due)
        except STORE_ERRORS:  # the lease brings it back anyway
            log.warning("hand_back_failed")

    def _record(self, account: Account, outcome: Outcome, seconds: float) -> None:
        if isinstance(outcome, Refreshed):
            result = "refreshed" if outcome.called else "skipped"
        else:
            result = outcome.failure.kind
        self.metrics.refreshes.labels(account.provider, account.app, result).inc()
        if result != "skipped":
            self.metrics.refresh_seconds.labels(account.provider).observe(seconds)

    async def _pause(self, seconds: float) -> None:
        await self._wait_event(self.stopping, seconds)

    @staticmethod
    async def _wait_event(event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)
