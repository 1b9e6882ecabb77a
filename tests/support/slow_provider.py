"""Issue 17's fault-injection run: a slow, rotating provider under token-endpoint load."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.broker import Loss, running_broker
from tests.support.idp import Idp
from tests.support.load import LoadResult, TokenClient


@dataclass(frozen=True)
class SlowProvider:
    """The run's shape: accounts, client load, and how slow the provider is for how long."""

    accounts: int = 300
    token_ttl_s: int = 30  # the provider's access token lifetime (Idp access_token_ttl_s)
    rate_per_s: float = 200.0
    min_validity_s: int = 20  # asked by every client: above half the lifetime, so on demand
    delay_ms: tuple[int, int] = (8_000, 12_000)
    window_s: float = 60.0  # how long the provider is slow; the load goes on `after_s` more
    after_s: float = 10.0

    def describe(self) -> str:
        """The scenario in one line."""
        low, high = (ms / 1000 for ms in self.delay_ms)
        return (
            f"{self.accounts} accounts, {self.token_ttl_s} s tokens, web + 2 workers, "
            f"{self.rate_per_s:.0f} token requests/s (minValidity {self.min_validity_s} s), "
            f"provider answers in {low:g}-{high:g} s for {self.window_s:g} s"
        )


@dataclass(frozen=True)
class SlowProviderRun:
    """What one run measured."""

    scenario: SlowProvider
    load: LoadResult
    loss: Loss
    refreshes: int  # refresh_token requests the provider received
    unheard: int  # of them, completed after our side had hung up (rotations nobody learned)
    seconds: float

    def summary(self) -> str:
        """The numbers in two lines."""
        return (
            f"{self.loss.summary()}; provider: {self.refreshes} refreshes, {self.unheard} "
            f"completed after the client hung up\nclients: {self.load.summary()}"
        )


async def run_slow_provider(tmp: Path, idp: Idp, scenario: SlowProvider) -> SlowProviderRun:
    """Run the scenario on a fresh broker against `idp` (access tokens of token_ttl_s)."""
    started = time.monotonic()
    life_ms = scenario.token_ttl_s * 1000
    # Every app request goes through; the provider's slowness is the subject, not the limit.
    async with running_broker(tmp, idp, TOKENBROKER_APP_RATE_PER_S="1000") as broker:
        ids = [f"slow{i:03d}" for i in range(scenario.accounts)]
        # tokens at every age, as in a running system: valid from half to all of their life
        await broker.import_accounts(
            ids, valid_ms=life_ms // 2, spread_ms=life_ms // 2, lifetime_ms=life_ms
        )
        await broker.start_web()
        broker.spawn_worker("worker-a")
        broker.spawn_worker("worker-b")
        idp.reset()
        low, high = scenario.delay_ms
        idp.delay(low, high, int(scenario.window_s * 1000))
        async with TokenClient(
            broker.base_url, broker.api_token, scenario.min_validity_s
        ) as client:
            load = await client.steady(
                ids, scenario.rate_per_s, scenario.window_s + scenario.after_s
            )
        await broker.quiet(timeout_s=high / 1000 + 30)
        stats = idp.stats()
        loss = await broker.loss(ids)
    return SlowProviderRun(
        scenario,
        load,
        loss,
        stats["refresh_requests"],
        stats["refresh_unheard"],
        time.monotonic() - started,
    )
