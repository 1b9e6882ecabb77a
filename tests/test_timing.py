"""Timing rules: expires_in in every shape, due times, backoff, and the retry rules."""

from __future__ import annotations

import random

import pytest

from service.config import Config
from service.timing import (
    DEFAULT_LIFETIME_S,
    MAX_LIFETIME_S,
    MIN_LIFETIME_S,
    backoff_ms,
    due_ms,
    known_lifetime_ms,
    lifetime_s,
    refresh_lead_ms,
    refresh_retry_ms,
    webhook_retry_at,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3599, 3599),
        ("3599", 3599),
        (" 3600 ", 3600),
        (3599.7, 3599),
        (None, DEFAULT_LIFETIME_S),
        ("abc", DEFAULT_LIFETIME_S),
        (True, DEFAULT_LIFETIME_S),
        ([], DEFAULT_LIFETIME_S),
        (-5, MIN_LIFETIME_S),
        (20, 20),
        (0, MIN_LIFETIME_S),
        (10**12, MAX_LIFETIME_S),
        (float("nan"), DEFAULT_LIFETIME_S),
        ("1e400", MAX_LIFETIME_S),
    ],
)
def test_lifetime_parsing(raw: object, expected: int) -> None:
    """expires_in as int, string, missing, negative or absurd gives a sane lifetime."""
    assert lifetime_s(raw) == expected


def test_lead_bounds() -> None:
    """Lead = min(max(configured, 10% of lifetime), 50% of lifetime)."""
    assert refresh_lead_ms(3_600_000, 300) == 360_000  # 10% wins over 300 s
    assert refresh_lead_ms(600_000, 300) == 300_000  # 300 s, at the 50% cap
    assert refresh_lead_ms(120_000, 300) == 60_000  # 50% cap
    assert refresh_lead_ms(1_000_000, 0) == 100_000


def test_due_with_jitter() -> None:
    """Due time sits lead before expiry within +-10% jitter, never in the past."""
    now, life = 1_000_000_000, 3_600_000
    rng = random.Random(1)
    dues = [
        due_ms(now, now + life, life, lead_s=300, keepalive_s=86_400, rng=rng) for _ in range(200)
    ]
    assert all(now + life - 396_000 <= d <= now + life - 324_000 for d in dues)
    assert len(set(dues)) > 1
    assert due_ms(now, now - 5, 1000, lead_s=300, keepalive_s=86_400) == now


def test_keepalive_without_expiry() -> None:
    """A token that never expires gets a keep-alive refresh about keepalive_s later."""
    now = 1_000_000_000
    due = due_ms(now, None, None, lead_s=300, keepalive_s=86_400, rng=random.Random(2))
    assert now + 0.9 * 86_400_000 <= due <= now + 1.1 * 86_400_000


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


def test_refresh_retries_by_failure_kind() -> None:
    """App-level failures wait a minute or more; others follow the 5 s backoff and Retry-After."""
    assert 48_000 <= refresh_retry_ms("app", 1, None) <= 72_000
    assert 4_000 <= refresh_retry_ms("transient", 1, None) <= 6_000
    assert refresh_retry_ms("transient", 1, 120) >= 120_000


def test_webhook_retries_stop_at_the_budget(config: Config) -> None:
    """A delivery is retried while the retry falls within its budget, then never again."""
    first = 1_000_000
    assert webhook_retry_at(1, first, first, config) is not None
    late = first + config.webhook_retry_budget_s * 1000
    assert webhook_retry_at(1, first, late, config) is None


def test_known_lifetime_falls_back_to_what_is_known() -> None:
    """Stored lifetime first, then expiry minus last refresh, then the default."""
    assert known_lifetime_ms(5_000, None, None) == 5_000
    assert known_lifetime_ms(None, 10_000, 4_000) == 6_000
    assert known_lifetime_ms(None, None, None) == DEFAULT_LIFETIME_S * 1000
