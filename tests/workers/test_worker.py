"""Worker: run() in the foreground, and close() that stops it and waits for its work."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson

from service.clock import ManualClock, iso
from tests.support.idp import Idp
from tests.support.polling import eventually
from workers.worker import Worker

Adder = Callable[..., Awaitable[dict[str, Any]]]
MINUTE = 60_000
DELAY_MS = 700  # the provider holds the refresh this long


async def test_close_returns_once_run_has_stored_the_refresh_in_flight(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp
) -> None:
    """close() stops run() and returns only after it has: the refresh at the provider is stored."""
    minted = await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.fault("answer_delay_ms", ms=DELAY_MS)
    running = asyncio.create_task(worker.run())

    async def at_provider() -> bool:
        return (await asyncio.to_thread(idp.stats))["refresh_requests"] > 0

    def still_running() -> None:
        assert not running.done(), "run() ended before the refresh reached the provider"

    await eventually(at_provider, 10, "the refresh at the provider", check=still_running)
    await worker.close()
    assert running.done()
    account = await worker.core.accounts.require("a1")
    assert worker.core.accounts.refresh_token(account) != minted["refresh_token"]
    await asyncio.wait_for(worker.close(), 1)  # idempotent
    await running


async def test_run_watches_credential_expiry(worker: Worker, clock: ManualClock) -> None:
    """A running worker sends appCredentialsExpiring for a secret that dies in 10 days."""
    expires = iso(clock.now_ms() + 10 * 86_400_000)
    body = {
        "id": "dying",
        "provider": "oidc",
        "clientId": "c",
        "tokenUrl": "https://idp.example/token",
        "clientSecret": "s",
        "credentialExpires": expires,
    }
    await worker.core.apps.create(body, iso(clock.now_ms()))
    running = asyncio.create_task(worker.run())

    async def noticed() -> bool:
        app = await worker.core.apps.require("dying")
        return app.fields.get("credentialNotice", "").endswith(":warning")

    await eventually(noticed, 10, "the expiry notice")
    await worker.close()
    await running
    events = cast(
        list[tuple[str, dict[str, str]]],
        await worker.core.redis.xrange(worker.core.keys.global_events),
    )
    assert [orjson.loads(f["payload"])["event"] for _, f in events] == ["appCredentialsExpiring"]
