"""Token lifetimes: parsing expires_in in every shape and the refresh due time."""

from __future__ import annotations

import random

import pytest

from service.expiry import (
    DEFAULT_LIFETIME_S,
    MAX_LIFETIME_S,
    MIN_LIFETIME_S,
    due_ms,
    lifetime_s,
    refresh_lead_ms,
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
