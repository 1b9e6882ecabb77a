"""The refresh loop in burst mode with an injected clock: schedule, claims, every outcome."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from redis.asyncio import Redis
from structlog.testing import capture_logs

from service.clock import ManualClock
from service.ratelimit import AppRateLimit
from tests.support.idp import Idp
from tests.support.polling import refreshes_reach
from workers.worker import Worker

Adder = Callable[..., Awaitable[dict[str, Any]]]
MINUTE = 60_000


async def score(redis: Redis, worker: Worker, account: str) -> float | None:
    """The account's due time in the schedule (None when unscheduled)."""
    part = worker.core.keys.partition_of(account)
    return await redis.zscore(worker.core.keys.schedule(part), account)


async def events(redis: Redis, stream: str) -> list[dict[str, Any]]:
    """Every event payload in a stream."""
    entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(stream))
    return [orjson.loads(fields["payload"]) for _, fields in entries]


async def test_due_accounts_are_refreshed_and_rescheduled(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """Nothing happens before the due time; after it, one refresh and a new due time."""
    minted = await add_account(expires_in_s=600)
    due = await score(redis, worker, "a1")
    assert due is not None and clock.now_ms() + 4 * MINUTE < due < clock.now_ms() + 6 * MINUTE
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 0
    clock.advance(6 * MINUTE)
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 1
    account = await worker.core.accounts.require("a1")
    assert worker.core.accounts.refresh_token(account) != minted["refresh_token"]
    assert account.expires_at_ms == clock.now_ms() + 3_600_000
    new_due = await score(redis, worker, "a1")
    assert new_due is not None and new_due > clock.now_ms() + 50 * MINUTE
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 1


async def test_transient_failures_back_off(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """A 503 keeps the account active, counts the attempt and retries after a backoff."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.fault("status", status=503)
    await worker.run(burst=True)
    account = await worker.core.accounts.require("a1")
    assert account.status == "active" and account.attempts == 1
    assert account.last_error is not None and account.last_error["status"] == 503
    retry = await score(redis, worker, "a1")
    assert retry is not None and clock.now_ms() + 3_000 <= retry <= clock.now_ms() + 7_000
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 1
    clock.advance(10_000)
    await worker.run(burst=True)
    account = await worker.core.accounts.require("a1")
    assert account.attempts == 0 and account.last_error is None
    assert idp.stats()["refresh_requests"] == 2


async def test_retry_after_is_honoured(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """A 429 with Retry-After: 120 is not retried for two minutes."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.fault("status", status=429, retry_after="120")
    await worker.run(burst=True)
    retry = await score(redis, worker, "a1")
    assert retry is not None and retry >= clock.now_ms() + 120_000


async def test_invalid_grant_needs_reauth_once(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """invalid_grant: reauth_required with a reason, unscheduled, one authenticationError."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.fault(
        "error",
        error="invalid_grant",
        error_description="AADSTS50173: revoked",
        error_codes=[50173],
    )
    await worker.run(burst=True)
    account = await worker.core.accounts.require("a1")
    assert account.status == "reauth_required" and account.reason == "revoked"
    assert await score(redis, worker, "a1") is None
    clock.advance(60 * MINUTE)
    await worker.run(burst=True)
    found = await events(redis, worker.core.keys.events(0))
    errors = [e for e in found if e["event"] == "authenticationError"]
    assert len(errors) == 1
    assert errors[0]["data"]["reason"] == "revoked" and errors[0]["account"] == "a1"
    assert idp.stats()["refresh_requests"] == 1


async def test_app_credentials_error_flags_app_once(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """invalid_client flags the app with one event, keeps accounts active, retries slowly."""
    await add_account("a1", expires_in_s=600)
    await add_account("a2", expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.faults([{"kind": "error", "status": 401, "error": "invalid_client"}] * 2)
    await worker.run(burst=True)
    for name in ("a1", "a2"):
        account = await worker.core.accounts.require(name)
        assert account.status == "active"
        retry = await score(redis, worker, name)
        assert retry is not None and retry >= clock.now_ms() + 48_000
    app = await worker.core.apps.require("idp")
    assert "error" in app.fields
    flagged = await events(redis, worker.core.keys.global_events)
    assert [e["event"] for e in flagged] == ["appCredentialsError"]
    clock.advance(2 * MINUTE)
    await worker.run(burst=True)  # credentials work again: flag cleared
    assert "error" not in (await worker.core.apps.require("idp")).fields


async def test_missing_scopes_event_once(
    worker: Worker, add_account: Adder, clock: ManualClock, redis: Redis
) -> None:
    """A grant without a required scope records scopesMissing once, not on every refresh."""
    await add_account(expires_in_s=600, scope="openid email profile offline_access")
    for _ in range(2):
        clock.advance(61 * MINUTE)
        await worker.run(burst=True)
    found = await events(redis, worker.core.keys.events(0))
    missing = [e for e in found if e["event"] == "scopesMissing"]
    assert len(missing) == 1
    assert missing[0]["data"]["missingScopes"] == ["mail.read"]


async def test_lease_brings_back_a_crashed_claim(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """An account claimed by a worker that died is refreshed once the lease has passed."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    claimed = await worker.refresh.schedule.claim(0, clock.now_ms(), 30_000, 10)
    assert [a for a, _ in claimed] == ["a1"]
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 0
    clock.advance(30_001)
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 1


async def test_skip_when_refreshed_elsewhere(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """A claimed account another process refreshed meanwhile is skipped and rescheduled."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    claimed = await worker.refresh.schedule.claim(0, clock.now_ms(), 30_000, 10)
    await worker.core.refresher.refresh("a1", 0, force=True)  # another process
    await worker.refresh._process("a1", claimed[0][1])
    assert idp.stats()["refresh_requests"] == 1
    due = await score(redis, worker, "a1")
    assert due is not None and due > clock.now_ms() + 50 * MINUTE


async def test_orphan_and_inactive_members_leave(
    worker: Worker, add_account: Adder, clock: ManualClock, redis: Redis
) -> None:
    """A scheduled id without a record is dropped from the schedule instead of looping."""
    await redis.zadd(worker.core.keys.schedule(0), {"ghost": clock.now_ms() - 1})
    await worker.run(burst=True)
    assert await score(redis, worker, "ghost") is None


async def test_keepalive_refreshes_long_lived_tokens(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp, redis: Redis
) -> None:
    """A token valid for a week is still refreshed after the keep-alive interval (24 h)."""
    await add_account(expires_in_s=7 * 86_400)
    due = await score(redis, worker, "a1")
    assert due is not None and due <= clock.now_ms() + 27 * 3_600_000
    clock.advance(27 * 3_600_000)
    await worker.run(burst=True)
    assert idp.stats()["refresh_requests"] == 1


async def test_claims_are_fair_over_partitions(
    worker: Worker, add_account: Adder, clock: ManualClock, redis: Redis
) -> None:
    """With 4 partitions and 4 free slots, one round claims from every partition."""
    keys = dataclasses.replace(worker.core.keys, partitions=4)
    worker.core.keys = keys
    now = clock.now_ms()
    for i in range(40):
        await redis.zadd(keys.schedule(keys.partition_of(f"acct{i}")), {f"acct{i}": now - 1})
    worker.refresh.config = dataclasses.replace(worker.refresh.config, worker_concurrency=4)
    claimed = await worker.refresh.claim_round()
    assert {keys.partition_of(a) for a, _ in claimed} == {0, 1, 2, 3}


async def test_app_rate_limit_is_shared(worker: Worker, redis: Redis) -> None:
    """The per-app bucket allows `burst` refreshes, then asks to wait until it refills."""
    limit = AppRateLimit(worker.core.keys, worker.core.scripts, rate_per_s=2, burst=2)
    other = AppRateLimit(worker.core.keys, worker.core.scripts, rate_per_s=2, burst=2)
    now = 1_000_000
    assert await limit.wait_ms("x", now) == 0
    assert await other.wait_ms("x", now) == 0  # a second worker shares the bucket
    wait = await limit.wait_ms("x", now)
    assert 0 < wait <= 500
    assert await other.wait_ms("x", now + 500) == 0
    assert await limit.wait_ms("y", now) == 0  # another app has its own bucket


async def test_an_account_deleted_during_its_refresh_is_an_ordinary_outcome(
    worker: Worker, add_account: Adder, clock: ManualClock, idp: Idp
) -> None:
    """Deleted while at the provider: logged as refresh_account_deleted, never a crash."""
    await add_account(expires_in_s=600)
    clock.advance(6 * MINUTE)
    idp.fault("answer_delay_ms", ms=1000)
    requests = idp.stats()["refresh_requests"]
    with capture_logs() as logs:
        run = asyncio.create_task(worker.run(burst=True))

        def running() -> None:
            assert not run.done(), "the worker finished before reaching the provider"

        await refreshes_reach(idp, requests + 1, check=running)
        account = await worker.core.accounts.require("a1")
        assert await worker.core.accounts.delete(account, clock.now_ms())
        await run
    events = [line["event"] for line in logs]
    assert "refresh_account_deleted" in events and "refresh_crashed" not in events
    assert "orphan_refresh_token_revoked" in events
