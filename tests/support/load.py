"""Token-endpoint load for process tests and benches: a steady rate or one burst, timed."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiohttp
import orjson

NO_ANSWER = 0  # the status recorded when the client got no HTTP answer at all


@dataclass
class LoadResult:
    """What the clients saw: answers by status, and how long the slowest one waited."""

    statuses: Counter[int] = field(default_factory=Counter)
    refresh_failed: int = 0  # 200 answers flagged refreshFailed (a valid but stale token)
    longest_s: float = 0.0

    def add(self, status: int, seconds: float, failed: bool) -> None:
        """Record one answer."""
        self.statuses[status] += 1
        self.refresh_failed += failed
        self.longest_s = max(self.longest_s, seconds)

    def summary(self) -> str:
        """One line for messages and reports."""
        answers = ", ".join(
            f"{status or 'none'}: {n}" for status, n in sorted(self.statuses.items())
        )
        return (
            f"{sum(self.statuses.values())} requests ({answers}; {self.refresh_failed} with "
            f"refreshFailed), longest wait {self.longest_s:.1f} s"
        )


class TokenClient:
    """GET /v1/account/{id}/oauth-token?minValidity=N with an API token, timed per request."""

    def __init__(
        self, base_url: str, api_token: str, min_validity_s: int, timeout_s: float = 60.0
    ) -> None:
        self.base_url, self.min_validity_s = base_url, min_validity_s
        self.headers = {"Authorization": f"Bearer {api_token}"}
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Self:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.session is not None:
            await self.session.close()

    async def get(self, account: str, result: LoadResult) -> tuple[int, float]:
        """One token request, recorded in `result`; returns (status, seconds)."""
        assert self.session is not None, "use as an async context manager"
        url = f"{self.base_url}/v1/account/{account}/oauth-token"
        params = {"minValidity": str(self.min_validity_s)}
        started, status, failed = time.monotonic(), NO_ANSWER, False
        try:
            async with self.session.get(
                url, params=params, headers=self.headers, timeout=self.timeout
            ) as response:
                body = await response.read()
                status = response.status
                if status == 200:
                    failed = bool(orjson.loads(body).get("refreshFailed"))
        except (aiohttp.ClientError, TimeoutError):
            pass
        seconds = time.monotonic() - started
        result.add(status, seconds, failed)
        return status, seconds

    async def steady(
        self, ids: list[str], rate_per_s: float, duration_s: float, seed: int = 17
    ) -> LoadResult:
        """Open-loop load: `rate_per_s` requests a second on random accounts, then all answers.

        Requests are sent on schedule whatever the answers take (like independent clients).
        """
        rng, result = random.Random(seed), LoadResult()
        loop = asyncio.get_running_loop()
        tasks: set[asyncio.Task[tuple[int, float]]] = set()
        start, count = loop.time(), int(rate_per_s * duration_s)
        for index in range(count):
            ahead = start + index / rate_per_s - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)  # pacing the sender, not waiting for a result
            task = asyncio.create_task(self.get(rng.choice(ids), result))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.wait(tasks)
        return result

    async def burst(self, ids: list[str]) -> LoadResult:
        """One request per account, all at once; returns when every one is answered."""
        result = LoadResult()
        await asyncio.gather(*(self.get(account, result) for account in ids))
        return result
