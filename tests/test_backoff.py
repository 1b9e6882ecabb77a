"""Backoff: exponential growth, cap, jitter bounds and Retry-After as a floor."""

from __future__ import annotations

import random

from service.backoff import backoff_ms


def test_grows_and_caps() -> None:
    """Delays double per attempt within ±20% and never pass the cap (plus jitter)."""
    rng = random.Random(3)
    for attempt in range(1, 12):
        delay = backoff_ms(attempt, base_ms=1000, cap_ms=60_000, rng=rng)
        expected = min(1000 * 2 ** (attempt - 1), 60_000)
        assert 0.8 * expected <= delay <= 1.2 * expected


def test_retry_after_is_a_floor() -> None:
    """A Retry-After longer than the backoff wins; a shorter one does not shorten it."""
    assert backoff_ms(1, base_ms=1000, retry_after_s=30, rng=random.Random(1)) == 30_000
    assert backoff_ms(5, base_ms=1000, retry_after_s=0.5, rng=random.Random(1)) >= 12_800


def test_huge_attempt_counts() -> None:
    """Absurd attempt numbers stay capped instead of overflowing."""
    assert backoff_ms(10**6, base_ms=1000, cap_ms=5000, rng=random.Random(0)) <= 6000
