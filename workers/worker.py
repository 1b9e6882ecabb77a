"""Worker(config, redis, http, clock): the long-running loops of one worker process."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import structlog
from redis.asyncio import Redis

from service.background import Background, stop_task
from service.clock import Clock
from service.config import Config
from service.core import build_core
from service.metrics import Metrics
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
        self.metrics = Metrics()
        self.core.refresher.incident = self.metrics.count_incident
        self.refresh = RefreshLoop(self.core, self.metrics, config)
        self.webhooks = WebhookLoop(self.core, self.metrics, config, http)
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

    async def _heartbeat(self) -> None:
        """Beat the health file whenever the loop made progress since the last beat."""
        seen = -1
        while True:
            progress = self.refresh.beats + self.webhooks.beats
            if progress != seen:
                seen = progress
                await asyncio.to_thread(beat, self.config.worker_health_file)
                with contextlib.suppress(*STORE_ERRORS):  # the dashboard's view; best effort
                    await self.core.redis.hset(
                        self.core.keys.workers, self.webhooks.consumer, self.core.clock.now_ms()
                    )
            await asyncio.sleep(max(self.config.poll_ms / 1000, 1.0))
