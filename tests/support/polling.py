"""eventually(): poll a condition against a deadline, the one way tests wait for something.

A test never sleeps a fixed time to let something happen: it names what it waits for and how
long that may take, and fails saying so. eventually_blocking() is the same for code that
cannot await (synchronous tests, fixtures that start servers).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.support.idp import Idp

Condition = Callable[[], Awaitable[bool] | bool]


async def eventually(
    condition: Condition,
    within_s: float,
    what: str,
    *,
    every_s: float = 0.02,
    check: Callable[[], None] | None = None,
    diagnostics: Callable[[], str] | None = None,
) -> float:
    """Poll `condition` (sync or async) until it holds; return the seconds that took.

    Fails with an AssertionError naming `what` (plus `diagnostics()`) once `within_s` has
    passed. `check` runs after each miss and may fail sooner (a process died, a wrong answer).
    """
    start = time.monotonic()
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - start
        _missed(start, within_s, what, check, diagnostics)
        await asyncio.sleep(every_s)


def eventually_blocking(
    condition: Callable[[], bool],
    within_s: float,
    what: str,
    *,
    every_s: float = 0.02,
    check: Callable[[], None] | None = None,
    diagnostics: Callable[[], str] | None = None,
) -> float:
    """eventually() for synchronous tests and fixtures: the same rules, blocking the thread."""
    start = time.monotonic()
    while not condition():
        _missed(start, within_s, what, check, diagnostics)
        time.sleep(every_s)
    return time.monotonic() - start


def _missed(
    start: float,
    within_s: float,
    what: str,
    check: Callable[[], None] | None,
    diagnostics: Callable[[], str] | None,
) -> None:
    """After a miss: run `check`, then fail naming `what` once `within_s` has passed."""
    if check is not None:
        check()
    if time.monotonic() - start > within_s:
        details = f"\n{diagnostics()}" if diagnostics is not None else ""
        raise AssertionError(f"timed out after {within_s} s waiting for {what}{details}")


async def refreshes_reach(
    idp: Idp, count: int, *, within_s: float = 10, check: Callable[[], None] | None = None
) -> None:
    """Wait until the test provider has received `count` refresh requests in all."""

    async def arrived() -> bool:
        return (await asyncio.to_thread(idp.stats))["refresh_requests"] >= count

    await eventually(arrived, within_s, f"{count} refresh requests at the provider", check=check)
