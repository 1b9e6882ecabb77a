"""Timing rules as pure functions: token lifetimes, when to refresh, when to retry.

Everything that decides a due time lives here, below both the refresh path and the webhook
loop: parsing expires_in, the refresh lead and its jitter, the keep-alive, the threshold a
claimed account is refreshed under, backoff with jitter, and the retry rules of refreshes
(per failure kind) and of webhook deliveries (within their retry budget).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from service.config import Config

DEFAULT_LIFETIME_S = 600  # expires_in missing or unreadable: assume short, never "forever"
MIN_LIFETIME_S = 1  # zero or negative: treat as expired at once, not as a crash
MAX_LIFETIME_S = 7 * 86_400  # absurdly long: cap, so a keep-alive refresh still happens
WEBHOOK_RETRY_CAP_MS = 8 * 3_600_000  # the longest wait between two delivery attempts


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


def refresh_expiry_ms(expires_in: object, sent_at_ms: int) -> int | None:
    """When a refresh token dies, from a response's refresh_token_expires_in (None: unknown).

    Seconds as a number or a numeric string; anything else, or a value not above zero, says
    nothing.
    """
    value: float
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        return None
    try:
        value = float(expires_in.strip() if isinstance(expires_in, str) else expires_in)
    except ValueError:
        return None
    if value != value or value <= 0 or value == float("inf"):
        return None
    return sent_at_ms + int(min(value, 10 * 365 * 86_400) * 1000)


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
    # The module's generator unless one is given: a new Random() seeds itself from the OS
    # each time (about a tenth of an import's CPU time went there).
    jitter = (rng or random).uniform(-0.1, 0.1)  # spreading load only, not a secret
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


def known_lifetime_ms(
    lifetime_ms: int | None, expires_at_ms: int | None, refreshed_at_ms: int | None
) -> int:
    """A token's lifetime as last granted (a default when unknown)."""
    if lifetime_ms:
        return lifetime_ms
    if expires_at_ms and refreshed_at_ms:
        return max(expires_at_ms - refreshed_at_ms, 1000)
    return DEFAULT_LIFETIME_S * 1000


def claimed_refresh_rule(
    lifetime_ms: int, last_refresh_ms: int, now_ms: int, config: Config
) -> tuple[int, bool]:
    """For a claimed account: (min validity in ms below which to refresh, force a keep-alive).

    A due account holds at most lead·1.1 of validity; one refreshed meanwhile by another
    process holds at least half its lifetime. The threshold sits between the two.
    """
    lead = refresh_lead_ms(lifetime_ms, config.refresh_lead_s)
    min_valid = (int(lead * 1.1) + lifetime_ms) // 2
    force = now_ms - last_refresh_ms >= config.keepalive_s * 900  # 90% of the keep-alive
    return min_valid, force


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


def refresh_retry_ms(
    kind: Literal["transient", "permanent", "app"], attempt: int, retry_after_s: float | None
) -> int:
    """How long to wait before retrying a failed refresh: app-level failures retry slowly."""
    if kind == "app":
        return backoff_ms(attempt, base_ms=60_000, cap_ms=3_600_000)
    return backoff_ms(attempt, retry_after_s=retry_after_s)


def webhook_retry_at(attempts: int, first_ms: int, now_ms: int, config: Config) -> int | None:
    """When to try a failed delivery again; None once its retry budget is spent."""
    wait = backoff_ms(attempts, base_ms=config.webhook_retry_base_ms, cap_ms=WEBHOOK_RETRY_CAP_MS)
    budget_end = first_ms + config.webhook_retry_budget_s * 1000
    return now_ms + wait if now_ms + wait <= budget_end else None
