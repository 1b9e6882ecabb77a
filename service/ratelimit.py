"""A refresh-rate limit per app, shared by every worker through Redis (token bucket)."""

from __future__ import annotations

from service.store.keys import Keys
from service.store.scripts import Scripts


class AppRateLimit:
    """Lets at most `rate_per_s` refreshes per second (bursts of `burst`) reach one app."""

    def __init__(self, keys: Keys, scripts: Scripts, rate_per_s: float, burst: int = 0) -> None:
        self.keys, self.scripts, self.rate_per_s = keys, scripts, rate_per_s
        self.burst = burst or max(1, int(rate_per_s))

    async def wait_ms(self, app: str, now_ms: int) -> int:
        """Take a slot now (returns 0), or say how many ms to wait before asking again."""
        args = [now_ms, self.rate_per_s, self.burst]
        return int(await self.scripts.run("rate_take", [self.keys.rate(app)], args))
