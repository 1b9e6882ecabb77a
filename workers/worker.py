"""Worker(config, redis, http, clock): the long-running loops of one worker process."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import structlog
from redis.asyncio import Redis

from service.clock import Clock
from service.config import Config
from service.core import Core
from service.metrics import Metrics
from workers.health import beat
from workers.refresh import RefreshLoop

log = structlog.get_logger("worker")


class Worker:
    """Runs the refresh loop (and, later, the webhook loop) against one Redis."""

    def __init__(self, config: Config, redis: Redis, http: aiohttp.ClientSession, clock: Clock):
        self.config = config
        self.core = Core(config, redis, http, clock)
        self.metrics = Metrics()
        self.refresh = RefreshLoop(self.core, self.metrics, config)

    async def run(self, burst: bool = False) -> None:
        """Run until stop() (or, in burst mode, until nothing is due)."""
        if burst:
            await self.refresh.run(burst=True)
            return
        heart = asyncio.create_task(self._heartbeat())
        try:
            await self.refresh.run()
        finally:
            heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heart

    def stop(self) -> None:
        """Stop claiming work; run() returns once in-flight work is done or handed back."""
        self.refresh.stop()

    async def close(self) -> None:
        """Stop and wait for in-flight work (within the grace period)."""
        self.stop()
        await self.refresh.drain()

    async def _heartbeat(self) -> None:
        """Beat the health file whenever the loop made progress since the last beat."""
        seen = -1
        while True:
            if self.refresh.beats != seen:
                seen = self.refresh.beats
                await asyncio.to_thread(beat, self.config.worker_health_file)
            await asyncio.sleep(self.config.poll_ms / 1000)
