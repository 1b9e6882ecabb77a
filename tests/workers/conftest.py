"""Fixtures for worker tests: a Worker on the test Redis with a clock the test moves."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from service.clock import ManualClock, SystemClock, iso
from service.config import Config
from service.store.connection import create_redis
from service.timing import next_refresh_ms
from tests.support.idp import Idp, minted_write
from workers.worker import Worker

SCOPE = "openid email profile offline_access mail.read"


@pytest.fixture
def clock() -> ManualClock:
    """A clock that starts at the real time and moves only when the test says."""
    return ManualClock(SystemClock().now_ms())


@pytest.fixture
def worker_config(config: Config, tmp_path: Any) -> Config:
    """Worker settings for tests: small batches, short lease and poll."""
    return dataclasses.replace(
        config,
        worker_concurrency=8,
        lease_ms=30_000,
        poll_ms=50,
        app_rate_per_s=1000,
        worker_health_file=str(tmp_path / "worker.health"),
    )


@pytest.fixture
async def worker(worker_config: Config, clock: ManualClock, redis: Redis) -> AsyncIterator[Worker]:
    """A Worker with its own Redis client and HTTP session on the test Redis."""
    client = create_redis(worker_config)
    async with aiohttp.ClientSession() as http:
        worker = Worker(worker_config, client, http, clock)
        await worker.core.settings.update(  # events are queued only for a webhook receiver
            {"webhooks": "http://127.0.0.1:9/hooks", "webhooksEnabled": True}
        )
        yield worker
    await client.aclose()


@pytest.fixture
async def app_id(worker: Worker, idp: Idp) -> str:
    """An oidc app at the test provider, requiring mail.read besides the defaults."""
    body = {
        "id": "idp",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "tokenUrl": idp.token_url,
        "issuer": idp.issuer,
        "additionalScopes": ["mail.read"],
    }
    return (await worker.core.apps.create(body, iso(SystemClock().now_ms()))).id


@pytest.fixture
def add_account(
    worker: Worker, app_id: str, idp: Idp, clock: ManualClock
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Import an account whose token expires `expires_in_s` from the clock's now."""

    async def add(
        account: str = "a1", expires_in_s: int = 3600, scope: str = SCOPE
    ) -> dict[str, Any]:
        minted = idp.mint(f"{account}-user", scope)
        core, now = worker.core, clock.now_ms()
        expires = now + expires_in_s * 1000
        write = minted_write(app_id, account, minted, scope, expires, expires_in_s * 1000)
        due = next_refresh_ms(core.config, now, expires, expires_in_s * 1000)
        await core.accounts.save(account, write, due, now, {"user": account})
        return minted

    return add
