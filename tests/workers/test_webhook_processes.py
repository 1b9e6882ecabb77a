"""Process-level tests of the webhook loop: `tokenbroker worker --only webhooks` subprocesses.

Each test runs its own redis-server (AOF on), a real receiver on a loopback port that verifies
every signature with the `standardwebhooks` package, and worker subprocesses configured through
the environment with short leases, polls and retry delays; every wait polls a condition against
a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
from aiohttp import web
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service.accounts import AccountWrite
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core, build_core
from service.store.connection import create_redis
from service.store.embedded import RedisProcess, free_port
from service.webhooks.deliveries import GROUP, Deliveries
from service.webhooks.secrets import WebhookSecrets
from tests.support.polling import Condition
from tests.support.processes import (
    WorkerProc,
    now_ms,
    start_worker,
    wait_until,
    worker_env,
)

APP_ID = "app"
POLL_S = 0.05


@dataclass(frozen=True)
class Hit:
    """One request the receiver answered."""

    msg_id: str
    account: str
    timestamp: int
    body: bytes
    status: int


@dataclass
class Receiver:
    """A webhook receiver on a fixed loopback port that can be stopped and started again.

    Every request is verified with `standardwebhooks` (and its webhook-id against the body's
    id); a failed check is recorded in `rejected` and answered 400. While `gate` is set,
    requests are held open (their ids in `held`) until the gate opens.
    """

    port: int = field(default_factory=free_port)
    secret: str = ""
    status: int = 200
    delay_s: float = 0.0
    gate: asyncio.Event | None = None
    hits: list[Hit] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    runner: web.AppRunner | None = None
    gates: list[asyncio.Event] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The URL the webhooks setting points at."""
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        """Verify the request, hold it while gated, answer the configured status."""
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            payload = orjson.loads(body)
            if headers["webhook-id"] != payload["id"]:
                raise WebhookVerificationError("webhook-id is not the body's id")
            if headers.get("content-type") != "application/json":
                raise WebhookVerificationError(f"content-type {headers.get('content-type')}")
        except (WebhookVerificationError, KeyError, ValueError) as exc:
            self.rejected.append(f"{headers.get('webhook-id')}: {exc!r}")
            return web.Response(status=400)
        gate = self.gate
        if gate is not None:
            self.held.append(payload["id"])
            await gate.wait()
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        status = self.status
        hit = Hit(
            payload["id"], payload["account"], int(headers["webhook-timestamp"]), body, status
        )
        self.hits.append(hit)
        return web.Response(status=status)

    def hold(self) -> None:
        """Hold every request from now on, until release()."""
        self.gate = asyncio.Event()
        self.gates.append(self.gate)

    def release(self) -> None:
        """Answer the held requests (with the status set now) and stop holding."""
        for gate in self.gates:
            gate.set()
        self.gate = None

    async def start(self) -> None:
        """Listen on the receiver's port (the same one after a stop)."""
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        """Close the listening socket and every connection: senders get connection refused."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def delivered(self) -> Counter[str]:
        """How many times each event id was answered with a 2xx."""
        return Counter(h.msg_id for h in self.hits if 200 <= h.status < 300)

    def delivered_accounts(self) -> set[str]:
        """The accounts whose accountAdded event was answered with a 2xx."""
        return {h.account for h in self.hits if 200 <= h.status < 300}


class WebhookWorker(WorkerProc):
    """One `tokenbroker worker --only webhooks` subprocess and its log file (JSON lines)."""

    def attempts(self, outcome: str | None = None) -> list[dict[str, Any]]:
        """The worker's `webhook` lines (one per attempt), optionally of one outcome."""
        return [e for e in self.events("webhook") if outcome is None or e["outcome"] == outcome]


@dataclass
class Stack:
    """A private Redis, a receiver, the workers' environment and a Core on the same data."""

    tmp: Path
    server: RedisProcess
    receiver: Receiver
    env: dict[str, str]
    config: Config
    redis: Redis
    core: Core
    workers: list[WebhookWorker] = field(default_factory=list)

    @property
    def deliveries(self) -> Deliveries:
        """The delivery state, read through the service's own code."""
        return Deliveries(self.core.redis, self.core.keys, self.core.scripts)

    def spawn(self, name: str, **overrides: str) -> WebhookWorker:
        """Start `tokenbroker worker --only webhooks` with the environment plus `overrides`."""
        log = self.tmp / f"{name}.log"
        env = {
            **self.env,
            "TOKENBROKER_WORKER_HEALTH_FILE": str(self.tmp / f"{name}.health"),
            **overrides,
        }
        process = start_worker(["--only", "webhooks"], env, self.tmp, log)
        worker = WebhookWorker(name, process, log)
        self.workers.append(worker)
        return worker

    async def rotate_secret(self) -> None:
        """Create the signing secret; the receiver verifies with it."""
        core = self.core
        secrets = WebhookSecrets(core.redis, core.keys, core.cipher)
        self.receiver.secret = await secrets.rotate(now_ms())

    async def add_accounts(self, ids: list[str]) -> None:
        """Import accounts through AccountStore.save: one accountAdded event each."""
        accounts = self.core.accounts
        for account in ids:
            now = now_ms()
            write = AccountWrite(
                app=APP_ID,
                provider="oidc",
                user=f"{account}@example.test",
                access_token=f"at-{account}",
                refresh_token=f"rt-{account}",
                scopes=["openid", "email"],
                expires_at_ms=now + 3_600_000,
                lifetime_ms=3_600_000,
            )
            await accounts.save(account, write, now + 3_000_000, now, {"user": account})

    async def queued(self) -> dict[str, str]:
        """Every event in the outbox streams: msg id -> account."""
        found: dict[str, str] = {}
        for outbox in self.core.keys.outboxes():
            stream = self.core.keys.outbox_stream(outbox)
            entries = cast(list[tuple[str, dict[str, str]]], await self.redis.xrange(stream))
            for _, fields in entries:
                payload = orjson.loads(fields["payload"])
                assert payload["event"] == "accountAdded", payload
                found[payload["id"]] = payload["account"]
        return found

    async def queued_of(self, accounts: list[str]) -> dict[str, str]:
        """The queued events of some accounts: msg id -> account."""
        return {i: a for i, a in (await self.queued()).items() if a in accounts}

    async def pending(self) -> dict[str, int]:
        """Entries taken but not finished, per consumer, over every outbox's group."""
        per: Counter[str] = Counter()
        for outbox in self.core.keys.outboxes():
            stream = self.core.keys.outbox_stream(outbox)
            if not await self.redis.exists(stream):
                continue
            summary = await self.redis.xpending(stream, GROUP)
            for consumer in summary["consumers"]:
                per[str(consumer["name"])] += int(consumer["pending"])
        return dict(per)

    async def settled(self) -> None:
        """Nothing left pending in a group, retrying or dead."""
        assert await self.pending() == {}
        assert await self.deliveries.list("pending", 100) == []
        assert await self.deliveries.list("failed", 100) == []

    def diagnostics(self) -> str:
        """Worker log tails and what the receiver saw, for failure messages."""
        seen = Counter(h.status for h in self.receiver.hits)
        parts = [w.tail() for w in self.workers]
        parts.append(f"receiver: answered {dict(seen)}, held {len(self.receiver.held)}")
        parts.append(f"receiver rejected: {self.receiver.rejected[:5]}")
        return "\n".join(parts)

    async def wait_until(self, condition: Condition, what: str, timeout_s: float) -> None:
        """Poll `condition` until it holds; fail naming `what` (and any dead worker) otherwise."""
        await wait_until(
            condition,
            what,
            timeout_s,
            poll_s=POLL_S,
            workers=self.workers,
            diagnostics=self.diagnostics,
            check=self._no_rejections,
        )

    def _no_rejections(self) -> None:
        """The receiver rejected no signature."""
        assert not self.receiver.rejected, self.diagnostics()

    def assert_quiet(self, worker: WorkerProc, *allowed: str) -> None:
        """No warning or error in the worker's log except the `allowed` events."""
        noisy = [
            line
            for line in worker.logs()
            if line.get("level") in ("warning", "error", "critical")
            and line.get("event") not in allowed
        ]
        assert not noisy, noisy[:5]


def base_env(server: RedisProcess, tmp: Path) -> dict[str, str]:
    """The workers' environment: this process's, minus tokenbroker variables, plus short times."""
    return worker_env(
        server.url,
        base64.b64encode(os.urandom(32)).decode(),
        tmp,
        TOKENBROKER_LOCK_MS="12000",  # > 2 x the provider timeout (3 s) + 5 s
        TOKENBROKER_WEBHOOK_TIMEOUT_S="4",
        TOKENBROKER_WEBHOOK_RETRY_BUDGET_S="3600",
        TOKENBROKER_WEBHOOK_RETRY_BASE_MS="200",
        TOKENBROKER_WEBHOOK_LEASE_MS="5000",
        TOKENBROKER_WEBHOOK_CONCURRENCY="8",
    )


MakeStack = Callable[..., Awaitable[Stack]]


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[MakeStack]:
    """Build a Stack (Redis, receiver, webhooks on); on exit stop workers, receiver, Redis."""
    stacks: list[Stack] = []
    resources: list[tuple[Redis, aiohttp.ClientSession]] = []
    server = RedisProcess(tmp_path / "redis")

    async def make(*, secret: bool = True, **env: str) -> Stack:
        await asyncio.to_thread(server.start)
        environ = {**base_env(server, tmp_path), **env}
        config = Config.from_env(environ)
        redis = create_redis(config, retries=3)
        http = aiohttp.ClientSession()
        resources.append((redis, http))
        core = build_core(config, redis, http, SystemClock())
        body = {
            "id": APP_ID,
            "provider": "oidc",
            "clientId": "client",
            "clientSecret": "client-secret",
            "tokenUrl": "http://127.0.0.1:9/token",
        }
        await core.apps.create(body, iso(now_ms()))
        receiver = Receiver()
        await receiver.start()
        stack = Stack(tmp_path, server, receiver, environ, config, redis, core)
        stacks.append(stack)
        # events are queued only while webhooks are on with a URL: set them up first
        await core.settings.update({"webhooks": receiver.url, "webhooksEnabled": True})
        if secret:
            await stack.rotate_secret()
        return stack

    yield make
    for stack in stacks:
        for worker in stack.workers:
            if worker.process.poll() is None:
                worker.process.kill()
                await asyncio.to_thread(worker.process.wait)
        stack.receiver.release()
        await stack.receiver.stop()
    for redis, http in resources:
        await http.close()
        await redis.aclose()
    await asyncio.to_thread(server.stop)


@pytest.mark.timeout(60)
async def test_kill_9_mid_delivery_another_worker_delivers_all(make_stack: MakeStack) -> None:
    """A worker SIGKILLed with deliveries in flight: another delivers every event, once each."""
    stack = await make_stack()
    receiver = stack.receiver
    ids = [f"k{i:02d}" for i in range(40)]
    await stack.add_accounts(ids)
    queued = await stack.queued()
    assert sorted(queued.values()) == ids
    receiver.hold()
    doomed = stack.spawn(
        "doomed", TOKENBROKER_WEBHOOK_TIMEOUT_S="30", TOKENBROKER_WEBHOOK_LEASE_MS="60000"
    )
    await stack.wait_until(lambda: len(receiver.held) >= 8, "8 deliveries held open", 20)
    held = set(receiver.held)
    assert len(receiver.held) == len(held) == 8, "one full batch (the concurrency) in flight"
    assert held <= set(queued)
    assert list((await stack.pending()).values()) == [8], "all taken by the doomed consumer"
    assert await doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert receiver.hits == [], "nothing was answered before the kill"
    receiver.gate = None  # the held requests stay open; new ones are answered 200 at once

    survivor = stack.spawn(
        "survivor", TOKENBROKER_WEBHOOK_LEASE_MS="1000", TOKENBROKER_WEBHOOK_TIMEOUT_S="0.9"
    )
    await stack.wait_until(
        lambda: set(receiver.delivered()) >= set(queued), "every event delivered", 30
    )
    await stack.wait_until(lambda: len(survivor.attempts()) >= 40, "the survivor's log", 5)
    assert await survivor.stop() == 0
    delivered = receiver.delivered()
    assert set(delivered) == set(queued), "no event lost, no unknown event"
    assert set(delivered.values()) == {1}, "each event delivered once by the survivor"
    assert {h.status for h in receiver.hits} == {200}
    logged = survivor.attempts()
    assert Counter(line["outcome"] for line in logged) == {"delivered": 40}
    assert {line["id"] for line in logged} == set(queued)
    await stack.settled()
    done = await stack.deliveries.list("delivered", 100)
    assert {d["id"] for d in done} == set(queued)
    stack.assert_quiet(survivor)


@pytest.mark.timeout(60)
async def test_redis_restart_under_a_running_webhook_worker(make_stack: MakeStack) -> None:
    """Redis (AOF) stopped and restarted: the worker logs, keeps running and delivers all."""
    stack = await make_stack(
        TOKENBROKER_REDIS_TIMEOUT_S="0.5",
        TOKENBROKER_WEBHOOK_LEASE_MS="1500",
        TOKENBROKER_WEBHOOK_TIMEOUT_S="1",
    )
    receiver = stack.receiver
    early = [f"early{i}" for i in range(10)]
    inflight = [f"inflight{i}" for i in range(5)]
    late = [f"late{i}" for i in range(10)]
    await stack.add_accounts(early)
    worker = stack.spawn("worker")
    await stack.wait_until(
        lambda: receiver.delivered_accounts() == set(early), "the early events delivered", 20
    )

    # deliveries in flight when Redis goes away: the receiver answers 200 during the outage,
    # so the worker cannot record them and must deliver them again once Redis is back
    receiver.hold()
    worker.process.send_signal(signal.SIGSTOP)  # so that one round reads all five at once
    try:
        await stack.add_accounts(inflight)
    finally:
        worker.process.send_signal(signal.SIGCONT)
    await stack.wait_until(lambda: len(receiver.held) >= 5, "5 deliveries in flight", 20)
    assert sorted(receiver.held) == sorted((await stack.queued_of(inflight)).keys())
    await asyncio.to_thread(stack.server.stop)
    down_at = now_ms()
    receiver.release()
    await stack.wait_until(
        lambda: (
            len(worker.events("webhook_store_error")) >= 5
            and bool(worker.events("store_unavailable"))
            and now_ms() > down_at + 2_000
        ),
        "store errors logged, with the store down for 2 s",
        15,
    )
    assert worker.process.poll() is None, "the worker keeps running without its store"
    assert {e["id"] for e in worker.events("webhook_store_error")} == set(receiver.held)
    await asyncio.to_thread(stack.server.start)
    kept = [stack.core.keys.account(a) for a in early + inflight]
    assert await stack.redis.exists(*kept) == 15, "the AOF kept the data"
    await stack.add_accounts(late)
    everything = set(early + inflight + late)
    await stack.wait_until(
        lambda: receiver.delivered_accounts() == everything, "every event delivered", 20
    )
    await stack.wait_until(
        lambda: len(worker.attempts("delivered")) >= 25, "the deliveries logged", 10
    )
    assert worker.process.poll() is None
    assert await worker.stop() == 0

    by_account = Counter(h.account for h in receiver.hits if h.status == 200)
    assert {a: by_account[a] for a in early + late} == dict.fromkeys(early + late, 1)
    assert {a: by_account[a] for a in inflight} == dict.fromkeys(inflight, 2), (
        "answered during the outage, delivered again after the lease"
    )
    queued = await stack.queued()
    assert set(queued.values()) <= everything, "trimmed only below what was delivered"
    assert set(receiver.delivered()) >= set(queued)
    assert len(receiver.delivered()) == 25, "one event id per account"
    await stack.settled()
    stack.assert_quiet(worker, "store_unavailable", "webhook_store_error", "cache_deaf")


@pytest.mark.timeout(60)
async def test_receiver_down_then_back_same_webhook_id(make_stack: MakeStack) -> None:
    """Receiver failing, then refusing connections, then back: all arrive under the same id."""
    stack = await make_stack(TOKENBROKER_WEBHOOK_RETRY_BASE_MS="300")
    receiver = stack.receiver
    receiver.status = 500
    ids = [f"down{i}" for i in range(6)]
    await stack.add_accounts(ids)
    queued = await stack.queued()
    worker = stack.spawn("worker")
    await stack.wait_until(
        lambda: {h.msg_id for h in receiver.hits} == set(queued), "a 500 for every event", 20
    )
    await receiver.stop()

    def network_failures() -> Counter[str]:
        failed = worker.attempts("retry")
        return Counter(e["id"] for e in failed if str(e["error"]).startswith("network: "))

    await stack.wait_until(
        lambda: set(network_failures()) == set(queued) and min(network_failures().values()) >= 2,
        "two refused attempts per event",
        20,
    )
    receiver.status = 200
    await receiver.start()
    await stack.wait_until(
        lambda: set(receiver.delivered()) == set(queued), "every event delivered", 20
    )
    await stack.wait_until(
        lambda: len(worker.attempts("delivered")) >= len(queued), "the deliveries logged", 5
    )
    assert await worker.stop() == 0

    for msg_id, account in queued.items():
        hits = [h for h in receiver.hits if h.account == account]
        assert {h.msg_id for h in hits} == {msg_id}, "the same webhook-id on every attempt"
        assert len({h.body for h in hits}) == 1, "the same body on every attempt"
        assert [h.status for h in hits] == [500] * (len(hits) - 1) + [200]
        stamps = [h.timestamp for h in hits]
        assert stamps == sorted(stamps), "each attempt signed at its own time"
    done = {d["id"]: d for d in await stack.deliveries.list("delivered", 100)}
    assert set(done) == set(queued)
    refused = network_failures()
    for msg_id, summary in done.items():
        statuses = [a["status"] for a in summary["attempts"]]
        seen = [h.status for h in receiver.hits if h.msg_id == msg_id]
        assert [s for s in statuses if s is not None] == seen
        assert statuses.count(None) == refused[msg_id] >= 2
        assert all(
            str(a["error"]).startswith("network: ")
            for a in summary["attempts"]
            if a["status"] is None
        )
    await stack.settled()
    stack.assert_quiet(worker)


@pytest.mark.timeout(60)
async def test_two_workers_share_200_events_exactly_once(make_stack: MakeStack) -> None:
    """Two webhook workers share 200 events over 4 partitions: each delivered exactly once."""
    stack = await make_stack(secret=False, TOKENBROKER_SCHEDULE_PARTITIONS="4")
    receiver = stack.receiver
    receiver.delay_s = 0.005  # a receiver that takes a moment, so that both workers take part
    ids = [f"s{i:03d}" for i in range(200)]
    await stack.add_accounts(ids)
    queued = await stack.queued()
    assert sorted(queued.values()) == ids
    outboxes = {stack.core.keys.partition_of(a) for a in ids}
    assert outboxes == set(range(4)), "spread over every partition"
    workers = [stack.spawn("worker-a"), stack.spawn("worker-b")]
    # both read the settings before any can deliver: no secret yet, each warns once
    await stack.wait_until(
        lambda: all(w.events("webhook_secret_missing") for w in workers), "both workers up", 20
    )
    await stack.rotate_secret()
    await stack.wait_until(
        lambda: set(receiver.delivered()) == set(queued), "every event delivered", 30
    )
    await stack.wait_until(
        lambda: sum(len(w.attempts()) for w in workers) >= 200, "the deliveries logged", 5
    )
    assert [await w.stop() for w in workers] == [0, 0]
    assert set(receiver.delivered().values()) == {1}, "each event exactly once"
    assert {h.status for h in receiver.hits} == {200} and len(receiver.hits) == 200
    shares = [{e["id"] for e in w.attempts("delivered")} for w in workers]
    assert all(shares), f"both workers delivered: {[len(s) for s in shares]}"
    assert not shares[0] & shares[1] and shares[0] | shares[1] == set(queued)
    assert all(len(w.attempts()) == len(s) for w, s in zip(workers, shares, strict=True))
    await stack.settled()
    for worker in workers:
        stack.assert_quiet(worker, "webhook_secret_missing")
