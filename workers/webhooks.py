"""The webhook loop: delivers outbox events to the receiver, signed, retried, dead-lettered."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from typing import Any

import aiohttp
import orjson
import structlog
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from service.config import Config
from service.core import Core
from service.crypto.cipher import Cipher
from service.metrics import Metrics
from service.outbound.session import outbound_session
from service.store.connection import STORE_ERRORS
from service.store.keys import Keys
from service.timing import webhook_retry_at
from service.webhooks.deliveries import Deliveries, Delivery
from service.webhooks.framing import Frame, framing
from service.webhooks.sender import Sender

log = structlog.get_logger("worker.webhooks")
TRIM_EVERY_ROUNDS = 50
HOUSEKEEPING_EVERY_S = 10.0


class WebhookLoop:
    """Reads every outbox through one consumer group, shared by all workers."""

    def __init__(
        self, core: Core, metrics: Metrics, config: Config, http: aiohttp.ClientSession
    ) -> None:
        self.core, self.metrics, self.config = core, metrics, config
        self.deliveries = Deliveries(core.redis, core.keys, core.scripts)
        self.http = http  # refreshes' session; deliveries get their own (see run)
        self.sender = Sender(http, config.webhook_timeout_s)
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.stopping = asyncio.Event()
        self.rounds = 0  # rounds with a receiver configured (housekeeping cadence)
        self.beats = 0  # rounds that reached Redis (heartbeat)
        self._warned = False
        self._housekept = 0.0
        self._reclaim_from: dict[str, str] = {}  # outbox -> where the next reclaim scan starts

    def stop(self) -> None:
        """Stop after the current round."""
        self.stopping.set()

    async def run(self, burst: bool = False) -> None:
        """Deliver until stopped; in burst mode, until nothing is left to do now.

        Deliveries use an HTTP session of their own, sized to the delivery concurrency, so a
        hanging receiver can never take the connections that refreshes need.
        """
        async with outbound_session(self.config, limit=self.config.webhook_concurrency) as http:
            self.sender = Sender(http, self.config.webhook_timeout_s)
            try:
                await self._run(burst)
            finally:
                self.sender = Sender(self.http, self.config.webhook_timeout_s)

    async def _run(self, burst: bool) -> None:
        ready = store_down = False
        while not self.stopping.is_set():
            try:
                if not ready:
                    await self.deliveries.ensure_groups()
                    ready = True
                done = await self.round()
                self.beats += 1
                if store_down:
                    log.info("store_available")
                    store_down = False
            except STORE_ERRORS as exc:
                if not store_down:
                    log.warning("store_unavailable", error=type(exc).__name__)
                ready, store_down = False, True
                if burst:
                    raise
                await self._pause()
                continue
            except ResponseError as exc:  # e.g. NOGROUP after the data was lost: start over
                log.error("webhook_round_failed", error=str(exc)[:200])
                ready = False
                if burst:
                    raise
                await self._pause()
                continue
            if burst and not done:
                return
            if not done:
                await self._pause()

    async def round(self) -> int:
        """Deliver what is due in every outbox; returns how many events were attempted."""
        settings = await self.core.settings.all()
        url = settings["webhooks"]
        if not url or not settings["webhooksEnabled"]:
            return 0
        frame = await framing(*self._sealed(), settings, self.core.clock.now_ms())
        if frame is None:
            if not self._warned:
                log.warning("webhook_secret_missing")
                self._warned = True
            return 0
        batch = await self._collect()
        limit = asyncio.Semaphore(self.config.webhook_concurrency)

        async def one(item: Delivery) -> None:
            async with limit:
                try:
                    await self.deliver(item, url, frame)
                except STORE_ERRORS as exc:  # the lease or the pending list brings it back
                    log.warning("webhook_store_error", id=item.msg_id, error=type(exc).__name__)
                except Exception:
                    log.exception("webhook_crashed", id=item.msg_id)

        await asyncio.gather(*(one(item) for item in batch))
        self.rounds += 1
        stale = time.monotonic() - self._housekept > HOUSEKEEPING_EVERY_S
        if self.rounds % TRIM_EVERY_ROUNDS == 0 or stale:
            await self.housekeeping()
        return len(batch)

    async def _collect(self) -> list[Delivery]:
        """Take at most one event per delivery slot, so none ages unsent in a pending list."""
        room, lease = self.config.webhook_concurrency, self.config.webhook_lease_ms
        now = self.core.clock.now_ms()
        batch: list[Delivery] = []
        for outbox in self.core.keys.outboxes():
            if room > len(batch):
                batch += await self.deliveries.due_retries(outbox, now, lease, room - len(batch))
            if room > len(batch):
                start = self._reclaim_from.get(outbox, "0-0")
                found, self._reclaim_from[outbox] = await self.deliveries.reclaim(
                    outbox, self.consumer, lease, room - len(batch), start
                )
                batch += found
            if room > len(batch):
                batch += await self.deliveries.read_new(outbox, self.consumer, room - len(batch))
        return batch

    async def deliver(self, item: Delivery, url: str, frame: Frame) -> None:
        """One attempt, in a span of its own; the receiver gets the span's `traceparent`."""
        with self.core.tracing.span("webhook attempt") as span:
            outcome = await self._attempt(item, url, frame)
            if self.core.tracing.enabled:
                payload = orjson.loads(item.payload)
                span.set_attribute("webhook.id", item.msg_id)
                span.set_attribute("webhook.event", str(payload.get("event", "unknown")))
                span.set_attribute("webhook.attempt", len(item.attempts))
                span.set_attribute("webhook.outcome", outcome)
                if isinstance(payload.get("account"), str):
                    span.set_attribute("account.id", payload["account"])

    async def _attempt(self, item: Delivery, url: str, frame: Frame) -> str:
        """One attempt; record it as delivered, to retry, or dead past the budget."""
        structlog.contextvars.bind_contextvars(attempt=len(item.attempts) + 1)
        now = self.core.clock.now_ms()
        body, headers = frame(item.msg_id, item.payload, len(item.attempts), now)
        attempt = await self.sender.post(url, headers, item.msg_id, body, now)
        item.attempts.append(attempt.public())
        event = _event_name(item)
        self.metrics.delivery_seconds.observe(attempt.duration_ms / 1000)
        if attempt.ok:
            await self.deliveries.delivered(item, _summary(item, event))
            outcome = "delivered"
        else:
            first = item.first_ms or now
            retry_at = webhook_retry_at(len(item.attempts), first, now, self.config)
            outcome = await self.deliveries.failed(item, retry_at, now)
        self.metrics.deliveries.labels(event, outcome).inc()
        log.info(
            "webhook",
            id=item.msg_id,
            kind=event,
            outcome=outcome,
            status=attempt.status,
            error=attempt.error,
        )
        return outcome

    async def housekeeping(self) -> None:
        """Trim streams below what is delivered; refresh the backlog gauges."""
        for outbox in self.core.keys.outboxes():
            await self.deliveries.trim(outbox)
        waiting, age_ms = await self.deliveries.backlog(self.core.clock.now_ms())
        self.metrics.backlog.set(waiting)
        self.metrics.backlog_age.set(age_ms / 1000)
        self.metrics.dead_letters.set(await self.deliveries.dead_count())
        self._housekept = time.monotonic()

    def _sealed(self) -> tuple[Redis, Keys, Cipher, str]:
        """What framing reads the secrets and custom headers with, and the public URL."""
        core = self.core
        return core.redis, core.keys, core.cipher, self.config.base_url

    async def _pause(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), self.config.poll_ms / 1000)


def _event_name(item: Delivery) -> str:
    return str(orjson.loads(item.payload).get("event", "unknown"))


def _summary(item: Delivery, event: str) -> dict[str, Any]:
    last = item.attempts[-1]
    return {
        "id": item.msg_id,
        "event": event,
        "date": last["date"],
        "status": "delivered",
        "attempts": item.attempts,
    }
