"""Worker(config, redis, http, clock): the long-running loops of one worker process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import aiohttp
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from service import errors
from service.background import Background, stop_task
from service.clock import Clock
from service.config import Config
from service.core import build_core
from service.credential_watch import CredentialWatch
from service.grant_watch import GrantWatch
from service.metrics import WorkerMetrics
from service.store.connection import STORE_ERRORS
from workers.health import beat
from workers.refresh import RefreshLoop
from workers.webhooks import WebhookLoop

log = structlog.get_logger("worker")


LOOPS = ("refresh", "webhooks")


class Worker:
    """Runs the refresh loop and the webhook loop (or only one of them) against one Redis."""

    def __init__(
        self,
        config: Config,
        redis: Redis,
        http: aiohttp.ClientSession,
        clock: Clock,
        only: str | None = None,
    ):
        self.config = config
        self.core = build_core(config, redis, http, clock)
        self.metrics = WorkerMetrics()
        self.metrics.cache_lookups.follow(self.core.cache)
        self.core.refresher.incident = self.metrics.count_incident
        self.refresh = RefreshLoop(self.core, self.metrics, config)
        self.webhooks = WebhookLoop(self.core, self.metrics, config, http)
        self.watch = CredentialWatch(self.core.apps, config, clock)
        self.grants = GrantWatch(self.core.accounts, self.core.links, config, clock)
        self.loops = [only] if only else list(LOOPS)
        self.idle = asyncio.Event()  # set while run() is not running
        self.idle.set()

    async def run(self, burst: bool = False) -> None:
        """Run until stop() (or, in burst mode, until nothing is due)."""
        self.idle.clear()
        try:
            await self._run(burst)
        finally:
            self.idle.set()

    async def _run(self, burst: bool) -> None:
        if burst:
            if "refresh" in self.loops:
                await self.refresh.run(burst=True)
            if "webhooks" in self.loops:
                await self.webhooks.run(burst=True)
            return
        background = Background(self.core)
        background.start()
        heartbeat = asyncio.create_task(self._heartbeat(), name="heartbeat")
        runs = []
        if "refresh" in self.loops:
            runs.append(self.refresh.run())
            background.tasks.append(asyncio.create_task(self._watch(), name="credential-watch"))
        if "webhooks" in self.loops:
            runs.append(self.webhooks.run())
        try:
            await asyncio.gather(*runs)
        finally:
            await stop_task(heartbeat)
            await background.stop()

    def stop(self) -> None:
        """Stop claiming work; run() returns once in-flight work is done or handed back."""
        self.refresh.stop()
        self.webhooks.stop()

    async def close(self) -> None:
        """Stop, and return once run() has: in-flight work finished or handed back.

        Idempotent; returns at once when run() is not running.
        """
        self.stop()
        await self.idle.wait()

    async def _watch(self) -> None:
        """Check credentials' and grants' deadlines every credential_check_s (until stopped)."""
        while True:
            for name, check in (("credential", self.watch.check), ("grant", self.grants.check)):
                try:
                    await check()
                except (*STORE_ERRORS, RedisError, errors.ApiError) as exc:  # again next round
                    log.warning(f"{name}_watch_failed", error=type(exc).__name__)
            await asyncio.sleep(self.config.credential_check_s)

    async def _heartbeat(self) -> None:
        """Beat the health file whenever the loop made progress since the last beat.

        Each round also tells the metrics whether Redis answered (the beat's write, else a PING).
        """
        seen = -1
        while True:
            progress = self.refresh.beats + self.webhooks.beats
            if progress != seen:
                seen = progress
                await asyncio.to_thread(beat, self.config.worker_health_file)
                now_ms = self.core.clock.now_ms()
                self.metrics.last_beat.set(now_ms / 1000)
                reached = await self._reach(  # the dashboard's view; best effort
                    self.core.redis.hset(self.core.keys.workers, self.webhooks.consumer, now_ms)
                )
            else:
                reached = await self._reach(self.core.redis.ping())
            self.metrics.store_up.set(1 if reached else 0)
            await asyncio.sleep(max(self.config.poll_ms / 1000, 1.0))

    @staticmethod
    async def _reach(command: Awaitable[object]) -> bool:
        """Await one Redis command; False when Redis did not answer it."""
        try:
            await command
        except (*STORE_ERRORS, RedisError):
            return False
        return True
