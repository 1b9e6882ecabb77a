"""Process tests of the application grants: a real `tokenbroker worker`, Redis and provider.

The provider's access tokens live 30 s, so within the test every account is minted, then
minted again ahead of expiry by the worker: 100 delegated gmailService mailboxes (JWT bearer)
and 50 outlookService mailboxes sharing one client-credentials token per app.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from service.account_record import Status
from service.accounts import Account, AccountWrite
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core, build_core
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from tests.conftest import TEST_SECRET
from tests.support.idp import Idp
from tests.support.processes import WorkerProc, start_worker, wait_until, worker_env
from tests.test_secrets_at_rest import dump_redis

TTL_S = 30
MAILBOXES = 100
APP_ONLY = 50
TENANT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"


@pytest.fixture(scope="module")
def short_idp() -> Iterator[Idp]:
    """A private provider whose access tokens live TTL_S seconds."""
    idp = Idp.start(access_token_ttl_s=TTL_S)
    yield idp
    idp.stop()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[tuple[Core, dict[str, str], list[WorkerProc]]]:
    """A private Redis, a Core on it, the workers' environment; workers stopped on exit."""
    server = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(server.start)
    env = worker_env(
        server.url,
        base64.b64encode(TEST_SECRET).decode(),
        tmp_path,
        TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES="true",
        TOKENBROKER_APP_RATE_PER_S="100000",
        TOKENBROKER_REFRESH_LEAD_S="15",
        TOKENBROKER_LEASE_MS="5000",
        TOKENBROKER_LOCK_MS="12000",
        TOKENBROKER_WORKER_CONCURRENCY="16",
    )
    config = Config.from_env(env)
    redis = create_redis(config, retries=3)
    workers: list[WorkerProc] = []
    async with aiohttp.ClientSession() as http:
        yield build_core(config, redis, http, SystemClock()), env, workers
    for worker in workers:
        worker.process.terminate()
        try:
            await asyncio.to_thread(worker.process.wait, 10)
        except subprocess.TimeoutExpired:
            worker.process.kill()
            await asyncio.to_thread(worker.process.wait)
    await redis.aclose()
    await asyncio.to_thread(server.stop)


async def add_mailboxes(core: Core, app: str, ids: list[str]) -> None:
    """Accounts of a service app: a mailbox each, no token at all (due at once)."""
    now = core.clock.now_ms()
    stored = await core.apps.require(app)
    for account in ids:
        write = AccountWrite(
            app=app,
            provider=stored.provider,
            user=f"{account}@example.test",
            scopes=stored.scopes,
            app_endpoints=stored.endpoints_fingerprint,
        )
        await core.accounts.save(account, write, now, now, {"user": account})


async def accounts(core: Core, ids: list[str]) -> dict[str, Account]:
    """The accounts as stored now."""
    found = {}
    for account in ids:
        found[account] = await core.accounts.require(account)
    return found


@pytest.mark.timeout(150)
async def test_worker_keeps_service_accounts_fresh(
    stack: tuple[Core, dict[str, str], list[WorkerProc]], short_idp: Idp, tmp_path: Path
) -> None:
    """Service mailboxes stay fresh without refresh tokens; withdrawal and forgery stay contained.

    One app token per app and cycle; a withdrawn subject marks only its account; a forged key
    is the app's error.
    """
    core, env, workers = stack
    short_idp.reset()
    now = iso(core.clock.now_ms())
    key_file = short_idp.service_account()
    forged = short_idp.service_account()  # another account's key, signing for the first
    common = {"provider": "gmailService", "tokenUrl": short_idp.token_url}
    await core.apps.create(
        {**common, "id": "gws", "serviceKey": orjson.dumps(key_file).decode()}, now
    )
    forged_body = {
        **common,
        "id": "forged",
        "serviceKey": str(forged["private_key"]),
        "serviceClient": str(key_file["client_id"]),
        "serviceClientEmail": str(key_file["client_email"]),
    }
    await core.apps.create(forged_body, now)
    await core.apps.create(
        {
            "id": "exo",
            "provider": "outlookService",
            "authority": TENANT,
            "clientId": short_idp.client_id,
            "clientSecret": short_idp.client_secret,
            "tokenUrl": short_idp.token_url,
        },
        now,
    )
    boxes = [f"g{n:03d}" for n in range(MAILBOXES)]
    app_only = [f"o{n:03d}" for n in range(APP_ONLY)]
    await add_mailboxes(core, "gws", boxes)
    await add_mailboxes(core, "forged", ["f000"])
    await add_mailboxes(core, "exo", app_only)
    workers.append(
        WorkerProc("w1", start_worker([], env, tmp_path, tmp_path / "w1.log"), tmp_path / "w1.log")
    )

    async def minted(ids: list[str]) -> dict[str, Account]:
        found = await accounts(core, ids)
        return found if all(a.expires_at_ms for a in found.values()) else {}

    async def first_round() -> bool:
        return bool(await minted(boxes + app_only))

    await wait_until(
        first_round,
        "every mailbox's first token",
        40,
        poll_s=0.2,
        workers=workers,
        diagnostics=lambda: "\n".join(
            [w.tail() for w in workers] + [str(short_idp.service_stats())]
        ),
    )
    first = await accounts(core, boxes + app_only)
    withdrawn = boxes[7]
    short_idp.delegate(str(key_file["client_email"]), f"{withdrawn}@example.test", allowed=False)

    async def second_round() -> bool:
        now_ = await accounts(core, boxes + app_only)
        again = [
            a
            for a in now_.values()
            if a.id != withdrawn and a.expires_at_ms != first[a.id].expires_at_ms
        ]
        gone = now_[withdrawn].status == Status.REAUTH_REQUIRED
        return gone and len(again) == len(now_) - 1

    await wait_until(
        second_round,
        "every mailbox minted again ahead of expiry",
        60,
        poll_s=0.2,
        workers=workers,
        diagnostics=lambda: "\n".join(
            [w.tail() for w in workers] + [str(short_idp.service_stats())]
        ),
    )
    final = await accounts(core, boxes + app_only + ["f000"])
    assert all(a.status == Status.ACTIVE for a in final.values() if a.id != withdrawn)
    assert final[withdrawn].reason == "delegationRefused"
    assert all(a.encrypted_refresh is None for a in final.values())
    assert len({final[a].expires_at_ms for a in app_only}) == 1  # one app token for all
    stats = short_idp.service_stats()
    assert stats["client_credentials_ok"] == 2, stats  # once per cycle, not once per account
    assert int(str(stats["jwt_bearer_ok"])) >= 2 * (MAILBOXES - 1), stats
    # the forged key: refused by the provider, reported as the app's error, account untouched
    flagged = (await core.apps.require("forged")).fields.get("error")
    assert flagged is not None and "Signature" in orjson.loads(flagged)["error_description"]
    assert final["f000"].status == Status.ACTIVE and final["f000"].expires_at_ms is None
    assert "error" not in (await core.apps.require("gws")).fields
    tokens = [core.accounts.access_token(final[a]) for a in (boxes[0], app_only[0])]
    await scan_for_secrets(core, [key_file, forged], tokens, workers)


async def scan_for_secrets(
    core: Core, key_files: list[dict[str, Any]], tokens: list[str], workers: list[WorkerProc]
) -> None:
    """No private key, assertion or access token in plaintext in Redis or the worker's log."""
    dump, _ = await dump_redis(core.config.redis_url)
    log = b"\n".join(w.log.read_bytes() for w in workers)
    pieces = [str(f["private_key"]).splitlines()[2].encode() for f in key_files]
    pieces += [token.encode() for token in tokens]
    for where, data in (("redis", dump), ("log", log)):
        for piece in pieces:
            assert piece not in data, f"a private key or token is in plaintext in {where}"
        assert b"PRIVATE KEY" not in data, where
        assert b"eyJhbGciOiJSUzI1Ni" not in data, f"an assertion is in plaintext in {where}"
