"""An account's refresh lock while we hold it: kept alive during a provider call, always freed.

The lock is the only thing that stops a second process from sending the same refresh token
(which a rotating provider treats as replay). So a provider call, once sent, is awaited as
long as the lock is still ours — extended every third of its life — and abandoned only when
the lock could not be extended and is about to lapse, or after `answer_max_s`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

import structlog
from redis.asyncio import Redis

from service.store.connection import STORE_ERRORS
from service.store.replicas import ReplicaWait
from service.store.scripts import Scripts

log = structlog.get_logger("refresh")
T = TypeVar("T")
RELEASE_RETRY_S = 0.1


class AnswerAbandoned(Exception):
    """The provider call outlived the lock (or answer_max_s) and was given up."""


class HeldLock:
    """One lock this process set; `released` once a script or `release` freed it."""

    def __init__(self, scripts: Scripts, key: str, value: str, lock_ms: int) -> None:
        self.scripts, self.key, self.value, self.lock_ms = scripts, key, value, lock_ms
        self.expires_at = time.monotonic() + lock_ms / 1000  # surely ours until then
        self.released = False

    @property
    def margin_s(self) -> float:
        """How long before the lock lapses a call in flight is given up."""
        return min(2.0, self.lock_ms / 10_000)

    async def extend(self) -> bool:
        """Extend the lock to a full life if still ours; False when not ours or Redis fails."""
        started = time.monotonic()
        try:
            ours = await self.scripts.run("lock_extend", [self.key], [self.value, self.lock_ms])
        except STORE_ERRORS:
            return False
        if int(ours) == 1:
            self.expires_at = started + self.lock_ms / 1000
            return True
        self.expires_at = min(self.expires_at, started)  # lost: nothing more may be sent
        return False

    async def hold_during(self, call: Awaitable[T], answer_max_s: float) -> T:
        """Await `call` while extending the lock; raise AnswerAbandoned when it must be dropped."""
        task = asyncio.ensure_future(call)
        give_up = time.monotonic() + answer_max_s
        try:
            while True:
                now = time.monotonic()
                wait = min(
                    self.lock_ms / 3000, self.expires_at - self.margin_s - now, give_up - now
                )
                done, _ = await asyncio.wait({task}, timeout=max(wait, 0))
                if done:
                    return task.result()
                now = time.monotonic()
                if now >= give_up:
                    break
                if not await self.extend() and now >= self.expires_at - self.margin_s:
                    break
        except BaseException:
            task.cancel()
            raise
        task.cancel()
        await asyncio.wait({task})  # let the call unwind (its connection closed) before going on
        log.warning("provider_answer_abandoned", lock_left_s=round(self.expires_at - now, 3))
        raise AnswerAbandoned

    async def release(self, background: set[asyncio.Task[None]]) -> None:
        """Free the lock now; if Redis is away, keep trying in the background until it lapses.

        `background` keeps the retry task referenced until it ends.
        """
        if self.released:
            return
        if await self._try_release():
            return
        log.warning("lock_release_failed", lock=self.key.rsplit(":", 1)[-1])
        task = asyncio.get_running_loop().create_task(self._release_later())
        background.add(task)
        task.add_done_callback(background.discard)

    async def _try_release(self) -> bool:
        try:
            await self.scripts.run("lock_release", [self.key], [self.value])
        except STORE_ERRORS:
            return False
        self.released = True
        return True

    async def _release_later(self) -> None:
        """Retry until released or the lock has lapsed by itself (then nothing is left to do)."""
        while not self.released and time.monotonic() < self.expires_at + 1:
            await asyncio.sleep(RELEASE_RETRY_S)
            if await self._try_release():
                log.info("lock_released_late", lock=self.key.rsplit(":", 1)[-1])


async def take(
    redis: Redis, scripts: Scripts, key: str, value: str, lock_ms: int
) -> HeldLock | None:
    """Set the lock if nobody holds it; the held lock, or None."""
    if await redis.set(key, value, nx=True, px=lock_ms):
        return HeldLock(scripts, key, value, lock_ms)
    return None


async def take_durably(wait: ReplicaWait, key: str, value: str, lock_ms: int) -> HeldLock | None:
    """Set the lock if nobody holds it, then wait (bounded) until a replica holds it too.

    The lock is what keeps a second process from sending a refresh token that a call in
    flight is replacing; a failover that dropped the lock would let the new master hand it
    to another process, which sends the replaced token (a replay the provider may punish by
    revoking the grant). Waited on like a rotated token: a lagging replica delays the take
    by at most the bound (counted), and the lock stands all the same.
    """
    taken, _ = await wait.run("lock_take", [key], [value, lock_ms])
    return HeldLock(wait.scripts, key, value, lock_ms) if int(taken) == 1 else None


async def wait_released(redis: Redis, key: str, deadline: float, poll_s: float) -> bool:
    """Wait while another process holds lock `key`: True once free, False past `deadline`.

    `deadline` is on time.monotonic(); the holder's answer is then in the store to read.
    """
    while await redis.exists(key):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(poll_s)
    return True
