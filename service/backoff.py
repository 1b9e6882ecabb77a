"""Retry delays as pure functions: capped exponential backoff with jitter."""

from __future__ import annotations

import random


def backoff_ms(
    attempt: int,
    *,
    base_ms: int = 5_000,
    cap_ms: int = 15 * 60_000,
    retry_after_s: float | None = None,
    rng: random.Random | None = None,
) -> int:
    """Delay before retry number `attempt` (1 = first retry): base·2^(n-1), capped, ±20%.

    A provider's Retry-After is honoured as a lower bound.
    """
    exponent = min(max(attempt, 1) - 1, 30)
    delay = min(base_ms * (2**exponent), cap_ms)
    jitter = (rng or random.Random()).uniform(0.8, 1.2)  # noqa: S311 - spreading load only
    delay = int(delay * jitter)
    if retry_after_s is not None:
        delay = max(delay, int(retry_after_s * 1000))
    return delay
