"""The tasks every process runs beside its work, and the one way to stop a task.

Web processes and workers alike follow the cache invalidation channel and write the API
tokens' last-use times in batches (a worker checks no API token: its flush finds nothing);
`Background` starts both and stops them once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import structlog
from redis.asyncio import Redis

from service.core import Core
from service.store.connection import STORE_ERRORS, create_redis

log = structlog.get_logger("background")
TOKEN_USE_FLUSH_S = 5.0  # how often API tokens' last-use times reach Redis
STOP_DEADLINE_S = 5.0  # how long stop_task keeps cancelling a task that will not end
CANCEL_EVERY_S = 0.1


async def stop_task(
    task: asyncio.Task[Any], *, grace_s: float = 0.0, deadline_s: float = STOP_DEADLINE_S
) -> bool:
    """Let `task` end by itself within `grace_s`, then cancel it until it is done.

    The cancel is repeated: redis-py may swallow one that lands inside connect(). Gives up
    after `deadline_s` (logged); returns whether the task is done. Calling it again, or on a
    finished task, is harmless.
    """
    if not task.done() and grace_s > 0:
        await asyncio.wait([task], timeout=grace_s)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    while not task.done():
        if loop.time() >= give_up:
            log.warning("task_not_stopped", task=task.get_name(), deadline_s=deadline_s)
            return False
        task.cancel()
        await asyncio.wait([task], timeout=CANCEL_EVERY_S)
    return True


class Background:
    """The cache listener and the token-use flush of one process: start(), then stop()."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self.tasks: list[asyncio.Task[None]] = []
        self._listener: Redis | None = None
        self._stopped = False

    def start(self) -> None:
        """Start following invalidations (own connection: a lost one must surface) and flushing."""
        core = self.core
        self._listener = create_redis(core.config, retries=0)
        listen = core.cache.listen(self._listener, core.keys.invalidations)
        self.tasks = [self._spawn(listen, "cache-listener"), self._spawn(self._flush(), "flush")]

    async def stop(self) -> None:
        """Stop both tasks, write the last token uses, close the listener (once)."""
        if self._stopped:
            return
        self._stopped = True
        for task in self.tasks:
            await stop_task(task)
        with contextlib.suppress(*STORE_ERRORS):  # only last-use times: lost at worst
            await self.core.token_service.flush_token_uses()
        if self._listener is not None:
            await self._listener.aclose()

    async def _flush(self) -> None:
        while True:
            await asyncio.sleep(TOKEN_USE_FLUSH_S)
            with contextlib.suppress(*STORE_ERRORS):  # only a last-use time: retried next time
                await self.core.token_service.flush_token_uses()

    @staticmethod
    def _spawn(work: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        return asyncio.create_task(work, name=name)
