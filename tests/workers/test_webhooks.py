"""The webhook loop against a real receiver: signed, once per change, retried, dead-lettered."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
import pytest
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook
from yarl import URL

from service.clock import ManualClock
from service.config import Config
from service.webhooks.deliveries import Deliveries
from service.webhooks.headers import WebhookHeaders
from service.webhooks.secrets import WebhookSecrets
from tests.support.idp import Idp
from tests.support.polling import eventually
from tests.support.receiver import HUGE, Receiver
from tests.test_signing import verify
from workers.worker import Worker

Adder = Callable[..., Awaitable[dict[str, Any]]]


@pytest.fixture
async def hooked(worker: Worker, receiver: Receiver, clock: ManualClock) -> str:
    """Webhooks on, pointing at the receiver; returns the signing secret."""
    await worker.core.settings.update({"webhooks": receiver.url, "webhooksEnabled": True})
    core = worker.core
    return await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(clock.now_ms())


def fast_retries(worker: Worker, budget_s: int = 60) -> None:
    """Short webhook retry settings for this worker."""
    config: Config = dataclasses.replace(
        worker.config,
        webhook_retry_base_ms=1000,
        webhook_retry_budget_s=budget_s,
        webhook_lease_ms=600,
        webhook_timeout_s=0.5,
    )
    worker.webhooks.config = config


async def test_event_delivered_signed(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str
) -> None:
    """An accountAdded event arrives once, with Standard Webhooks headers that verify."""
    await add_account()
    await worker.webhooks.run(burst=True)
    assert len(receiver.got) == 1
    headers, body = receiver.got[0]
    payload = orjson.loads(body)
    assert set(payload) == {"id", "event", "date", "account", "app", "data"}
    assert payload["event"] == "accountAdded" and payload["account"] == "a1"
    assert headers["webhook-id"] == payload["id"] and payload["id"].startswith("msg_")
    assert headers["Content-Type"] == "application/json"
    Webhook(hooked).verify(body, {k.lower(): v for k, v in headers.items()})
    await worker.webhooks.run(burst=True)
    assert len(receiver.got) == 1


async def test_invalid_grant_from_provider_fires_once(
    worker: Worker,
    add_account: Adder,
    receiver: Receiver,
    hooked: str,
    clock: ManualClock,
    idp: Idp,
) -> None:
    """invalid_grant from the real provider gives one authenticationError, not one per run."""
    await add_account(expires_in_s=600)
    clock.advance(6 * 60_000)
    idp.fault("error", error="invalid_grant")
    await worker.run(burst=True)
    clock.advance(3_600_000)
    await worker.run(burst=True)
    names = [e["event"] for e in receiver.events()]
    assert names == ["accountAdded", "authenticationError"]
    error = receiver.events()[1]
    assert error["data"]["reason"] == "invalidGrant" and error["data"]["user"] == "a1@example.test"


async def test_receiver_down_then_back(
    worker: Worker,
    add_account: Adder,
    receiver: Receiver,
    hooked: str,
    clock: ManualClock,
    redis: Redis,
) -> None:
    """Failed attempts are retried with backoff under the same webhook-id until delivered."""
    fast_retries(worker, budget_s=3600)
    receiver.status = 500
    await add_account()
    for _ in range(3):
        await worker.webhooks.run(burst=True)
        clock.advance(10_000)
    assert len(receiver.got) == 3
    receiver.status = 204
    clock.advance(60_000)
    await worker.webhooks.run(burst=True)
    ids = {headers["webhook-id"] for headers, _ in receiver.got}
    assert len(receiver.got) == 4 and len(ids) == 1
    core = worker.core
    done = await Deliveries(core.redis, core.keys, core.scripts).list("delivered", 10)
    assert done[0]["id"] in ids and len(done[0]["attempts"]) == 4
    assert await Deliveries(core.redis, core.keys, core.scripts).list("pending", 10) == []


async def test_dead_letter_then_redeliver(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, clock: ManualClock
) -> None:
    """A receiver failing past the budget leaves a dead letter; redelivering it works."""
    fast_retries(worker, budget_s=30)
    receiver.status = 500
    await add_account()
    deliveries = Deliveries(worker.core.redis, worker.core.keys, worker.core.scripts)
    for _ in range(20):
        await worker.webhooks.run(burst=True)
        clock.advance(20_000)
        if await deliveries.list("failed", 10):
            break
    dead = await deliveries.list("failed", 10)
    assert len(dead) == 1 and dead[0]["status"] == "failed"
    assert all(a["status"] == 500 for a in dead[0]["attempts"])
    tries = len(receiver.got)
    clock.advance(3_600_000)
    await worker.webhooks.run(burst=True)
    assert len(receiver.got) == tries  # dead letters are not retried on their own
    receiver.status = 200
    assert await deliveries.redeliver(dead[0]["id"], clock.now_ms())
    await worker.webhooks.run(burst=True)
    assert receiver.got[-1][0]["webhook-id"] == dead[0]["id"]
    assert await deliveries.list("failed", 10) == []


async def test_unfinished_delivery_is_reclaimed(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str
) -> None:
    """An event a crashed consumer took but never finished is delivered by another."""
    fast_retries(worker)
    await add_account()
    core = worker.core
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    await deliveries.ensure_groups()
    taken = await deliveries.read_new(core.keys.outboxes()[0], "crashed-worker", 10)
    assert len(taken) == 1

    async def delivered() -> bool:  # the reclaim waits for 600 ms of idleness
        await worker.webhooks.run(burst=True)
        return bool(receiver.got)

    await eventually(delivered, 10, "another consumer to deliver the event")
    assert [e["id"] for e in receiver.events()] == [taken[0].msg_id]


async def test_disabled_or_filtered_events_are_not_queued(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, redis: Redis
) -> None:
    """While webhooks are off nothing is queued; the event filter drops other events."""
    await worker.core.settings.update({"webhooksEnabled": False})
    await add_account("off")
    await worker.core.settings.update(
        {"webhooksEnabled": True, "webhookEvents": ["accountDeleted"]}
    )
    await add_account("filtered")
    assert await redis.xlen(worker.core.keys.events(0)) == 0
    account = await worker.core.accounts.require("filtered")
    await worker.core.accounts.delete(account, worker.core.clock.now_ms())
    await worker.webhooks.run(burst=True)
    assert [e["event"] for e in receiver.events()] == ["accountDeleted"]


async def test_rotation_signs_with_both_secrets(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, clock: ManualClock
) -> None:
    """After a rotation both secrets sign for a day; then only the new one."""
    core = worker.core
    new = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(clock.now_ms())
    await add_account("r1")
    await worker.webhooks.run(burst=True)
    headers, body = receiver.got[-1]
    args = (headers["webhook-id"], headers["webhook-timestamp"], body, headers["webhook-signature"])
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(hooked, *args) and verify(new, *args)
    clock.advance(25 * 3_600_000)
    await add_account("r2")
    await worker.webhooks.run(burst=True)
    headers, body = receiver.got[-1]
    args = (headers["webhook-id"], headers["webhook-timestamp"], body, headers["webhook-signature"])
    assert verify(new, *args) and not verify(hooked, *args)


async def test_trim_keeps_undelivered_entries(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, redis: Redis
) -> None:
    """Trimming removes delivered entries only; an unfinished one stays in the stream."""
    await add_account("t1")
    await worker.webhooks.run(burst=True)
    await add_account("t2")
    core = worker.core
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    await deliveries.ensure_groups()
    await deliveries.read_new(core.keys.outboxes()[0], "slow-worker", 10)
    await add_account("t3")
    await deliveries.trim(core.keys.outboxes()[0])
    entries = cast(list[tuple[str, dict[str, str]]], await redis.xrange(core.keys.events(0)))
    left = [orjson.loads(fields["payload"])["account"] for _, fields in entries]
    assert left == ["t2", "t3"]


async def test_backlog_ages_only_events_not_yet_delivered(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, clock: ManualClock
) -> None:
    """The delivered entry a trim keeps is not 'the oldest waiting event': nothing waits, age 0."""
    core = worker.core
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    outbox = core.keys.outboxes()[0]
    await add_account("b1")
    await worker.webhooks.run(burst=True)
    await deliveries.trim(outbox)
    assert len(receiver.got) == 1
    later = clock.now_ms() + 2 * 3_600_000
    assert await deliveries.backlog(later) == (0, 0)
    await add_account("b2")  # waiting, never read
    waiting, age_ms = await deliveries.backlog(later)
    assert waiting == 1 and 2 * 3_600_000 - 60_000 < age_ms <= 2 * 3_600_000 + 60_000
    await deliveries.read_new(outbox, "slow-worker", 10)  # read, not acknowledged: pending
    assert await deliveries.backlog(later) == (waiting, age_ms)


async def test_reconsent_fires_authentication_success(
    worker: Worker,
    add_account: Adder,
    receiver: Receiver,
    hooked: str,
    clock: ManualClock,
    idp: Idp,
) -> None:
    """An account back from reauth_required (new tokens saved) fires authenticationSuccess once."""
    await add_account(expires_in_s=600)
    clock.advance(6 * 60_000)
    idp.fault("error", error="invalid_grant")
    await worker.run(burst=True)
    assert (await worker.core.accounts.require("a1")).status == "reauth_required"
    await add_account(expires_in_s=600)  # the user consented again: new tokens for a1
    await add_account(expires_in_s=600)  # saved again while active: no second success
    await worker.webhooks.run(burst=True)
    names = [e["event"] for e in receiver.events()]
    assert names == ["accountAdded", "authenticationError", "authenticationSuccess"]
    assert (await worker.core.accounts.require("a1")).status == "active"


async def test_loopback_receiver_refused_without_private_urls(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, clock: ManualClock
) -> None:
    """With private URLs disallowed no notation of a loopback receiver gets an event."""
    fast_retries(worker, budget_s=10**6)
    worker.webhooks.config = dataclasses.replace(worker.webhooks.config, allow_private_urls=False)
    port = URL(receiver.url).port
    hosts = ("127.0.0.1", "localhost", "localhost.", "0x7f000001", "2130706433", "0", "127.1")
    await add_account()
    for host in (*hosts, "[::ffff:127.0.0.1]"):
        await worker.core.settings.update({"webhooks": f"http://{host}:{port}/hooks"})
        await worker.webhooks.run(burst=True)
        clock.advance(3_600_000)  # the next attempt is due
    assert receiver.got == []
    core = worker.core
    pending = await Deliveries(core.redis, core.keys, core.scripts).list("pending", 10)
    errors = [attempt["error"] for attempt in pending[0]["attempts"]]
    assert len(errors) == 8 and all(errors)
    assert errors[0].startswith("refused to connect to 127.0.0.1: a loopback address")
    assert errors[1].startswith("refused to connect to localhost (127.0.0.1)")
    assert errors[-1].startswith("refused to connect to ::ffff:7f00:1: a loopback address")


async def test_huge_answer_is_not_read(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str
) -> None:
    """A receiver's 50 MB answer is dropped unread: delivered on its status, cut short."""
    await worker.core.settings.update({"webhooks": receiver.url.replace("/hooks", "/huge")})
    await add_account()
    await worker.webhooks.run(burst=True)
    core = worker.core
    done = await Deliveries(core.redis, core.keys, core.scripts).list("delivered", 10)
    assert len(done) == 1 and done[0]["attempts"][0]["status"] == 200
    await asyncio.wait_for(receiver.ended.wait(), 10)
    assert not receiver.finished and receiver.sent < HUGE // 4


async def test_unsendable_header_is_retried_then_dead(
    worker: Worker, add_account: Adder, receiver: Receiver, hooked: str, clock: ManualClock
) -> None:
    """A header the client refuses (NUL) fails each attempt; past the budget it is dead."""
    fast_retries(worker, budget_s=30)
    core = worker.core
    sealer = WebhookHeaders(core.redis, core.keys, core.cipher)
    await core.settings.update({"webhookHeaders": {"X-Team": "a\x00b"}}, sealer)
    await add_account()
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    for _ in range(20):
        await worker.webhooks.run(burst=True)
        clock.advance(20_000)
        if await deliveries.list("failed", 10):
            break
    dead = await deliveries.list("failed", 10)
    assert len(dead) == 1 and len(dead[0]["attempts"]) > 1
    assert {a["error"] for a in dead[0]["attempts"]} == {"failed: ValueError"}
    assert receiver.got == []
    stream = core.keys.outbox_stream(core.keys.outboxes()[0])
    assert (await core.redis.xpending(stream, "webhooks"))["pending"] == 0


async def test_dead_consumers_entry_behind_in_flight_ones_is_reclaimed(
    worker: Worker, receiver: Receiver, hooked: str, redis: Redis
) -> None:
    """An entry of a dead consumer is reached even behind many entries still in flight."""
    core = worker.core
    outbox = core.keys.outboxes()[0]
    stream = core.keys.outbox_stream(outbox)
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    await deliveries.ensure_groups()
    for n in range(400):
        payload = {"id": f"msg_{n}", "event": "webhookTest", "date": "", "data": {}}
        await redis.xadd(stream, {"payload": orjson.dumps(payload).decode()})
    taken = await deliveries.read_new(outbox, "busy-worker", 400)  # in flight, not idle
    last = taken[-1]
    await redis.xclaim(stream, "webhooks", "dead-worker", 0, [last.entry_id], idle=3_600_000)
    for _ in range(10):
        await worker.webhooks.run(burst=True)
        if receiver.got:
            break
    assert [e["id"] for e in receiver.events()] == [last.msg_id]
