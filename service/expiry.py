"""Pure functions for token lifetimes: parsing expires_in and when to refresh next."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.config import Config

DEFAULT_LIFETIME_S = 600  # expires_in missing or unreadable: assume short, never "forever"
MIN_LIFETIME_S = 1  # zero or negative: treat as expired at once, not as a crash
MAX_LIFETIME_S = 7 * 86_400  # absurdly long: cap, so a keep-alive refresh still happens


def lifetime_s(expires_in: object) -> int:
    """Return a sane token lifetime in seconds from a provider's expires_in (any JSON value)."""
    value: float
    if isinstance(expires_in, bool) or expires_in is None:
        return DEFAULT_LIFETIME_S
    if isinstance(expires_in, int | float):
        value = float(expires_in)
    elif isinstance(expires_in, str):
        try:
            value = float(expires_in.strip())
        except ValueError:
            return DEFAULT_LIFETIME_S
    else:
        return DEFAULT_LIFETIME_S
    if value != value:  # NaN
        return DEFAULT_LIFETIME_S
    return int(min(max(value, MIN_LIFETIME_S), MAX_LIFETIME_S))


def refresh_lead_ms(lifetime_ms: int, configured_lead_s: int) -> int:
    """Lead before expiry: min(max(configured, 10% of lifetime), 50% of lifetime)."""
    return int(min(max(configured_lead_s * 1000, lifetime_ms // 10), lifetime_ms // 2))


def due_ms(
    now_ms: int,
    expires_at_ms: int | None,
    lifetime_ms: int | None,
    *,
    lead_s: int,
    keepalive_s: int,
    rng: random.Random | None = None,
) -> int:
    """Return when the next refresh is due, with +-10% jitter on the lead.

    Without an expiry (a token that never expires) the next refresh is a keep-alive.
    """
    jitter = (rng or random.Random()).uniform(-0.1, 0.1)  # noqa: S311 - spreading load only
    if expires_at_ms is None:
        return now_ms + int(keepalive_s * 1000 * (1 + jitter))
    life = lifetime_ms if lifetime_ms and lifetime_ms > 0 else max(expires_at_ms - now_ms, 1)
    lead = refresh_lead_ms(life, lead_s)
    due = expires_at_ms - int(lead * (1 + jitter))
    return min(max(due, now_ms), now_ms + keepalive_s * 1000)


def next_refresh_ms(
    config: Config, now_ms: int, expires_at_ms: int | None, lifetime_ms: int | None
) -> int:
    """due_ms with the configured lead and keep-alive."""
    return due_ms(
        now_ms,
        expires_at_ms,
        lifetime_ms,
        lead_s=config.refresh_lead_s,
        keepalive_s=config.keepalive_s,
    )
