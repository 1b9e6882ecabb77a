"""Time: an injectable wall clock in epoch milliseconds and ISO 8601 formatting."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    """Something that tells the wall-clock time in epoch milliseconds."""

    def now_ms(self) -> int:
        """Return the current time in epoch milliseconds."""
        ...


class SystemClock:
    """The real wall clock."""

    def now_ms(self) -> int:
        """Return time.time() in epoch milliseconds."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that only moves when told to (tests, burst runs)."""

    def __init__(self, start_ms: int) -> None:
        self.current_ms = start_ms

    def now_ms(self) -> int:
        """Return the set time."""
        return self.current_ms

    def advance(self, ms: int) -> None:
        """Move the clock forward by `ms`."""
        self.current_ms += ms


def iso(ms: int) -> str:
    """Format epoch ms as ISO 8601 UTC with milliseconds, like 2022-07-08T14:25:27.780Z."""
    stamp = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_ms(value: str) -> int:
    """Parse an ISO 8601 time (a zone is required) into epoch ms; raise ValueError if bad."""
    stamp = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    if stamp.tzinfo is None:
        raise ValueError("time zone missing")
    return int(stamp.timestamp() * 1000)
