"""Key rotation under load: tokens are served and refreshed while every value moves keys."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import ManualClock
from service.config import Config
from service.crypto.cipher import Cipher, key_id
from service.crypto.rotation import KeyRotation
from service.sealed_records import SealedRecords
from service.store.connection import create_redis
from service.store.scripts import Scripts
from service.web.appkeys import CORE
from service.webhooks.secrets import WebhookSecrets
from tests.conftest import TEST_SECRET, make_token
from tests.support.idp import Idp
from tests.support.sealed_data import NEW_KEY
from workers.worker import Worker

HOUR = 3_600_000
COUNT = 60  # the test provider keeps 1000 grants and tokens (LRU): more would be evicted
Client = TestClient[web.Request, web.Application]


def refreshed(worker: Worker, app_id: str) -> float:
    """How many refreshes this worker completed at the provider."""
    labels = {"provider": "oidc", "app": app_id, "outcome": "refreshed"}
    return worker.metrics.registry.get_sample_value("tokenbroker_refreshes_total", labels) or 0.0


async def fetch_all(client: Client, ids: list[str], headers: dict[str, str]) -> list[str]:
    """Ask the token endpoint for every account, 25 at a time; returns what failed."""
    failed: list[str] = []
    for start in range(0, len(ids), 25):
        chunk = ids[start : start + 25]
        url = "/v1/account/{}/oauth-token"
        answers = await asyncio.gather(*(client.get(url.format(a), headers=headers) for a in chunk))
        failed += [
            f"{a}: {r.status}" for a, r in zip(chunk, answers, strict=True) if r.status != 200
        ]
    return failed


@pytest.mark.timeout(180)
async def test_rotation_under_load(
    worker: Worker,
    worker_config: Config,
    config: Config,
    add_account: Callable[..., Awaitable[dict[str, Any]]],
    app_id: str,
    clock: ManualClock,
    idp: Idp,
    make_client: Callable[..., Awaitable[Client]],
) -> None:
    """Web serving and a worker refreshing during a rotation: no failure, all under the new key."""
    ids = [f"a{n}" for n in range(COUNT)]
    for start in range(0, COUNT, 20):
        await asyncio.gather(*(add_account(a) for a in ids[start : start + 20]))
    await WebhookSecrets(worker.core.redis, worker.core.keys, worker.core.cipher).rotate(0)
    rotated_cfg = dataclasses.replace(config, secret_key=NEW_KEY, old_secret_keys=(TEST_SECRET,))
    client = await make_client(rotated_cfg)
    await client.app[CORE].settings.update({"enableOAuthTokensApi": True})
    headers = {"Authorization": f"Bearer {await make_token(client.app[CORE], '*')}"}
    worker_cfg = dataclasses.replace(
        worker_config, secret_key=NEW_KEY, old_secret_keys=(TEST_SECRET,)
    )
    redis = create_redis(worker_cfg)
    async with aiohttp.ClientSession() as http:
        busy = Worker(worker_cfg, redis, http, clock, only="refresh")
        rotation = KeyRotation(
            redis, Scripts(redis), busy.core.cipher, SealedRecords(redis, busy.core.keys)
        )
        assert await rotation.status() == Counter({key_id(TEST_SECRET): 2 * COUNT + 2})
        started = time.perf_counter()
        task = asyncio.create_task(rotation.rotate(batch=2))
        at_end: list[float] = []
        task.add_done_callback(lambda _: at_end.append(refreshed(busy, app_id)))
        failed, rounds = [], 0
        while not task.done():
            clock.advance(2 * HOUR)  # every account is due again
            burst = asyncio.create_task(busy.run(burst=True))
            failed += await fetch_all(client, ids, headers)
            await burst
            rounds += 1
        stats = await task
        seconds = time.perf_counter() - started
        print(f"rotation under load: {stats} in {seconds:.2f} s, {rounds} rounds")
        assert failed == [] and stats.complete
        assert at_end[0] > 0, "the worker refreshed nothing while the rotation ran"
        after = await rotation.status()  # refreshes added previous refresh tokens meanwhile
        assert list(after) == [key_id(NEW_KEY)] and after[key_id(NEW_KEY)] >= 2 * COUNT + 2
        before = refreshed(busy, app_id)
        clock.advance(2 * HOUR)  # a stale refresh token put back would now fail (replay)
        await busy.run(burst=True)
        assert refreshed(busy, app_id) == before + COUNT
        counts = await busy.core.accounts.count_by_status()
        assert counts == {"active": COUNT, "reauth_required": 0}
        assert await fetch_all(client, ids, headers) == []
        only_new = Cipher(NEW_KEY)
        for account in (await busy.core.accounts.page(0, COUNT))[1]:
            assert only_new.decrypt(
                account.encrypted_refresh or "", f"acct:{account.id}:refreshToken"
            )
    await redis.aclose()
