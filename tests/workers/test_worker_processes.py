"""Process-level tests of `tokenbroker worker`: real worker processes, Redis and provider.

Each test runs its own redis-server (AOF on) and its own `tokenbroker worker` subprocesses,
configured through the environment with short leases, polls and grace periods; every wait
polls a condition against a deadline.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson
import pytest
from redis.asyncio import Redis

from service.accounts import Account, account_from_hash
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core, build_core
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from service.timing import next_refresh_ms
from tests.conftest import TEST_SECRET
from tests.support.idp import Idp, minted_write
from tests.support.polling import Condition
from tests.support.processes import (
    TOKENBROKER,
    WorkerProc,
    now_ms,
    start_worker,
    wait_until,
    worker_env,
)

SECRET_B64 = base64.b64encode(TEST_SECRET).decode()
SCOPE = "openid email profile offline_access mail.read"
# The short-lived providers' access token lifetime: 30 s, because the broker reads any
# shorter expires_in as 30 s (service/timing.py MIN_LIFETIME_S).
SHORT_TTL_S = 30
# 500 accounts are spread over 4 providers (one app each), 125 apiece: several apps share
# the workers.
SHORT_IDPS = 4
POLL_S = 0.1
HOUR_MS = 3_600_000


@dataclass
class Stack:
    """A private Redis, the environment the workers get, a Core on the same data, and an app."""

    tmp: Path
    server: RedisProcess
    env: dict[str, str]
    config: Config
    redis: Redis
    core: Core
    apps: dict[str, Idp]  # app id -> the provider it points at
    workers: list[WorkerProc] = field(default_factory=list)

    def spawn(self, name: str, **overrides: str) -> WorkerProc:
        """Start `tokenbroker worker` with the stack's environment plus `overrides`."""
        log = self.tmp / f"{name}.log"
        process = start_worker([], {**self.env, **overrides}, self.tmp, log)
        worker = WorkerProc(name, process, log)
        self.workers.append(worker)
        return worker

    async def check(self, *args: str) -> int:
        """Run `tokenbroker worker ARGS` (e.g. --check) to completion; return its exit code."""
        proc = await asyncio.create_subprocess_exec(
            str(TOKENBROKER),
            "worker",
            *args,
            env=self.env,
            cwd=self.tmp,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(20):
            return await proc.wait()

    def diagnostics(self) -> str:
        """Worker log tails and provider counters, appended to timeout messages."""
        parts = [w.tail() for w in self.workers]
        for app_id, idp in self.apps.items():
            try:
                parts.append(f"provider of {app_id}: {idp.stats()}")
            except (OSError, RuntimeError) as exc:
                parts.append(f"provider of {app_id} unavailable: {exc!r}")
            parts.append("".join(idp.stderr.splitlines(True)[-5:]))
        return "\n".join(parts)

    async def wait_until(
        self, condition: Condition, what: str, timeout_s: float, poll_s: float = POLL_S
    ) -> None:
        """Poll `condition` until it holds; fail naming `what` (and any dead worker) otherwise."""
        await wait_until(
            condition,
            what,
            timeout_s,
            poll_s=poll_s,
            workers=self.workers,
            diagnostics=self.diagnostics,
        )

    async def add_accounts(
        self,
        ids: list[str],
        *,
        expires_in_ms: int,
        lifetime_ms: int,
        due_in_ms: int | None = None,
        app_id: str = "idp",
    ) -> dict[str, int]:
        """Import accounts of an app with tokens minted at its provider; id -> stored expiry.

        The due time is the service's own (`next_refresh_ms`) unless `due_in_ms` sets it.
        """
        slots, idp = asyncio.Semaphore(6), self.apps[app_id]

        async def mint(account: str) -> dict[str, object]:
            async with slots:
                return await asyncio.to_thread(idp.mint, f"{account}-user", SCOPE)

        minted = await asyncio.gather(*(mint(a) for a in ids))
        expiries: dict[str, int] = {}
        accounts = self.core.accounts
        for account, tokens in zip(ids, minted, strict=True):
            now = now_ms()
            expires = now + expires_in_ms
            write = minted_write(app_id, account, tokens, SCOPE, expires, lifetime_ms)
            due = (
                now + due_in_ms
                if due_in_ms is not None
                else next_refresh_ms(self.config, now, expires, lifetime_ms)
            )
            await accounts.save(account, write, due, now, {"user": account})
            expiries[account] = expires
        return expiries

    async def accounts(self, ids: list[str]) -> dict[str, Account]:
        """The stored accounts, read in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in ids:
                pipe.hgetall(self.core.keys.account(account))
            rows = cast(list[dict[str, str]], await pipe.execute())
        rows = await self.core.accounts.scope_sets.expand(rows)
        found: dict[str, Account] = {}
        for account, row in zip(ids, rows, strict=True):
            parsed = account_from_hash(row)
            assert parsed is not None, f"account {account} vanished"
            found[account] = parsed
        return found

    async def scores(self, ids: list[str]) -> dict[str, float | None]:
        """Each account's due time in its partition's schedule (None: not scheduled)."""
        keys = self.core.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in ids:
                pipe.zscore(keys.schedule(keys.partition_of(account)), account)
            rows = cast(list[float | None], await pipe.execute())
        return dict(zip(ids, rows, strict=True))

    async def partition_events(self) -> list[dict[str, Any]]:
        """Every event payload appended to the partitions' event streams."""
        found: list[dict[str, Any]] = []
        for part in range(self.core.keys.partitions):
            entries = cast(
                list[tuple[str, dict[str, str]]],
                await self.redis.xrange(self.core.keys.events(part)),
            )
            found += [orjson.loads(fields["payload"]) for _, fields in entries]
        return found

    def refresh_at_provider(self, accounts: dict[str, Account]) -> dict[str, object]:
        """Use each stored refresh token at the provider; returns the failures by account.

        A token that is not the latest of its chain fails (and revokes the chain), so call
        this only once the workers have stopped, at the end of a test.
        """
        failures: dict[str, object] = {}
        for account_id, account in accounts.items():
            idp = self.apps[account.app]
            status, body = idp.refresh(self.core.accounts.refresh_token(account))
            if status != 200:
                failures[account_id] = (status, body)
        return failures


def base_env(server: RedisProcess, tmp: Path) -> dict[str, str]:
    """The workers' environment: this process's, minus tokenbroker variables, plus short times."""
    return worker_env(
        server.url,
        SECRET_B64,
        tmp,
        TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES="true",
        TOKENBROKER_APP_RATE_PER_S="100000",
        TOKENBROKER_REFRESH_LEAD_S="15",
        TOKENBROKER_LEASE_MS="5000",
        TOKENBROKER_LOCK_MS="12000",  # > 2 x the provider timeout (3 s) + 5 s
        TOKENBROKER_WORKER_CONCURRENCY="8",
    )


MakeStack = Callable[..., Awaitable[Stack]]


def stale_heartbeat(path: Path) -> None:
    """Write a heartbeat a minute old, as if the last worker had stopped long ago."""
    path.write_text(f"{time.time() - 60:.3f} 1\n")


@pytest.fixture(scope="module")
def short_idps() -> Iterator[list[Idp]]:
    """SHORT_IDPS private providers whose access tokens live SHORT_TTL_S seconds."""
    with ThreadPoolExecutor(SHORT_IDPS) as pool:
        starts = [pool.submit(Idp.start, access_token_ttl_s=SHORT_TTL_S) for _ in range(SHORT_IDPS)]
    providers = [start.result() for start in starts]
    yield providers
    for provider in providers:
        provider.stop()


@pytest.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[MakeStack]:
    """Build a Stack on a private redis-server; on exit, stop its workers and the server."""
    stacks: list[Stack] = []
    resources: list[tuple[Redis, aiohttp.ClientSession]] = []
    server = RedisProcess(tmp_path / "redis")

    async def make(idps: Idp | list[Idp], **env: str) -> Stack:
        """A stack with one app per provider: `idp`, then `idp1`, `idp2`, ..."""
        providers = idps if isinstance(idps, list) else [idps]
        apps = {f"idp{i or ''}": idp for i, idp in enumerate(providers)}
        await asyncio.to_thread(server.start)
        environ = {**base_env(server, tmp_path), **env}
        config = Config.from_env(environ)
        redis = create_redis(config, retries=3)
        http = aiohttp.ClientSession()
        resources.append((redis, http))
        core = build_core(config, redis, http, SystemClock())
        for app_id, idp in apps.items():
            body = {
                "id": app_id,
                "provider": "oidc",
                "clientId": idp.client_id,
                "clientSecret": idp.client_secret,
                "issuer": idp.issuer,
                "tokenUrl": idp.token_url,
                "additionalScopes": ["mail.read"],
            }
            await core.apps.create(body, iso(now_ms()))
        stack = Stack(tmp_path, server, environ, config, redis, core, apps)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        for worker in stack.workers:
            if worker.process.poll() is None:
                worker.process.terminate()
                try:
                    await asyncio.to_thread(worker.process.wait, 10)
                except subprocess.TimeoutExpired:
                    worker.process.kill()
                    await asyncio.to_thread(worker.process.wait)
    for redis, http in resources:
        await http.close()
        await redis.aclose()
    await asyncio.to_thread(server.stop)


@pytest.mark.timeout(120)
async def test_two_workers_keep_500_short_lived_tokens_fresh(
    make_stack: MakeStack, short_idps: list[Idp]
) -> None:
    """Two workers refresh 500 accounts of 30 s tokens twice each, always ahead of expiry."""
    for idp in short_idps:
        idp.reset()
    stack = await make_stack(
        short_idps, TOKENBROKER_WORKER_CONCURRENCY="24", TOKENBROKER_SCHEDULE_PARTITIONS="4"
    )
    life = SHORT_TTL_S * 1000
    per_app = 500 // SHORT_IDPS
    by_app = {app: [f"a{i}x{n:03d}" for n in range(per_app)] for i, app in enumerate(stack.apps)}
    ids = [account for accounts in by_app.values() for account in accounts]
    assert len(ids) == 500
    expiries: dict[str, int] = {}
    for app, accounts in by_app.items():
        # 16 s left of a 30 s token: the 15 s lead (+-10%) makes every account due at once
        expiries |= await stack.add_accounts(
            accounts, expires_in_ms=16_000, lifetime_ms=life, app_id=app
        )
    # per account: (refreshedAt, expiresAt) of the import and of every refresh seen since
    history = {a: [(0, expiries[a])] for a in ids}

    async def observe() -> None:
        for account_id, account in (await stack.accounts(ids)).items():
            assert account.status == "active", (account.public(), stack.diagnostics())
            if account.refreshed_at_ms and account.refreshed_at_ms != history[account_id][-1][0]:
                assert account.expires_at_ms is not None
                history[account_id].append((account.refreshed_at_ms, account.expires_at_ms))

    async def twice_refreshed() -> bool:
        await observe()
        return all(len(h) >= 3 for h in history.values())

    workers = [stack.spawn("worker-a"), stack.spawn("worker-b")]
    # refreshes of one account are >= 13.5 s apart: polling twice a second sees each one
    await stack.wait_until(twice_refreshed, "every account refreshed twice", 60, poll_s=0.5)
    assert [await w.stop() for w in workers] == [0, 0]
    await observe()

    late = {a: h for a, h in history.items() if any(c[0] >= p[1] for p, c in pairwise(h))}
    assert not late, f"refreshed at or after expiry: {dict(list(late.items())[:5])}"
    close = {
        a: h for a, h in history.items() if any(c[0] - p[0] < 10_000 for p, c in pairwise(h[1:]))
    }
    assert not close, f"refreshed twice within one cycle: {dict(list(close.items())[:5])}"
    final = await stack.accounts(ids)
    assert {a.lifetime_ms for a in final.values()} == {life}, "the provider's expires_in"
    # each provider's own count: one call per refresh we saw stored, nothing else
    seen = {app: sum(len(history[a]) - 1 for a in accounts) for app, accounts in by_app.items()}
    calls = {app: idp.stats()["refresh_requests"] for app, idp in stack.apps.items()}
    assert calls == seen
    logged = [e["account"] for w in workers for e in w.events("refreshed")]
    assert len(logged) == sum(seen.values()) and set(logged) == set(ids)
    assert all(w.events("refreshed") for w in workers), "both workers took part"
    for worker in workers:
        noisy = [line for line in worker.logs() if line.get("level") in ("warning", "error")]
        assert not noisy, noisy[:5]
    sample = {a: final[a] for a in ids[::5]}
    assert stack.refresh_at_provider(sample) == {}, "stored refresh tokens are the latest"


@pytest.mark.timeout(90)
async def test_kill_9_mid_batch_loses_no_account(make_stack: MakeStack, idp: Idp) -> None:
    """A worker SIGKILLed while holding claims: another refreshes everything after the lease."""
    stack = await make_stack(
        idp,
        TOKENBROKER_WORKER_CONCURRENCY="10",
        TOKENBROKER_LEASE_MS="3000",
        TOKENBROKER_LOCK_MS="12000",
    )
    ids = [f"k{i:02d}" for i in range(60)]
    await stack.add_accounts(ids, expires_in_ms=120_000, lifetime_ms=HOUR_MS)
    start = now_ms()
    # The doomed worker's 10 requests hang (a hang consumes no refresh token; a request the
    # provider completes after its client died would rotate a token nobody can learn).
    # Then the survivor's refreshes are slow, so that it is busy too when the kill lands.
    idp.faults([{"kind": "hang", "ms": 20_000}] * 10 + [{"kind": "delay_ms", "ms": 300}] * 50)
    doomed = stack.spawn("doomed")
    await stack.wait_until(
        lambda: idp.stats()["refresh_requests"] >= 10, "the doomed worker's 10 requests", 20
    )
    held = [a for a, s in (await stack.scores(ids)).items() if s is not None and s > now_ms()]
    assert len(held) == 10, "the doomed worker holds a full batch of claims"
    survivor = stack.spawn("survivor")

    async def some_refreshed() -> bool:
        return any(a.refreshed_at_ms for a in (await stack.accounts(ids)).values())

    await stack.wait_until(some_refreshed, "the survivor's first refreshes", 20)
    locks = [stack.core.keys.lock(a) for a in held]
    assert await stack.redis.exists(*locks) == 10, "the doomed worker is still mid-batch"
    assert await doomed.stop(signal.SIGKILL) == -signal.SIGKILL
    assert not any(a.refreshed_at_ms for a in (await stack.accounts(held)).values())

    async def all_refreshed() -> bool:
        accounts = await stack.accounts(ids)
        dead = {a: x.last_error for a, x in accounts.items() if x.status != "active"}
        assert not dead, f"{dead}\n{stack.diagnostics()}"
        return all((a.refreshed_at_ms or 0) > start for a in accounts.values())

    await stack.wait_until(all_refreshed, "every account refreshed after the lease", 40)
    assert await survivor.stop() == 0
    accounts = await stack.accounts(ids)
    assert all(a.attempts == 0 and a.last_error is None for a in accounts.values())
    scores = await stack.scores(ids)
    unscheduled = [a for a, s in scores.items() if s is None or s < now_ms() + 30 * 60_000]
    assert not unscheduled, f"left unscheduled or due too soon: {unscheduled}"
    # one call per account, plus one for each claim the killed worker took down with it
    assert idp.stats()["refresh_requests"] == 70
    assert stack.refresh_at_provider(accounts) == {}, "stored refresh tokens are the latest"


@pytest.mark.timeout(90)
async def test_redis_restart_under_a_running_worker(make_stack: MakeStack, idp: Idp) -> None:
    """Redis (AOF) stopped and restarted: the worker logs, waits, reconnects and catches up."""
    stack = await make_stack(idp, TOKENBROKER_REDIS_TIMEOUT_S="0.5")
    early = [f"early{i}" for i in range(10)]
    later = [f"later{i}" for i in range(10)]
    await stack.add_accounts(early, expires_in_ms=120_000, lifetime_ms=HOUR_MS)
    await stack.add_accounts(later, expires_in_ms=600_000, lifetime_ms=HOUR_MS, due_in_ms=HOUR_MS)
    worker = stack.spawn("worker")

    async def refreshed(ids: list[str], since: int = 0) -> bool:
        return all((a.refreshed_at_ms or 0) > since for a in (await stack.accounts(ids)).values())

    await stack.wait_until(lambda: refreshed(early), "the early accounts refreshed", 20)
    before = await stack.accounts(early)
    # make the later accounts come due while the store is down
    due = now_ms() + 1_500
    schedule = stack.core.keys.schedule
    for account in later:
        await stack.redis.zadd(
            schedule(stack.core.keys.partition_of(account)), {account: due}, xx=True
        )
    await asyncio.to_thread(stack.server.stop)
    down_at = now_ms()
    await stack.wait_until(
        lambda: bool(worker.events("store_unavailable")) and now_ms() > due + 1_000,
        "store_unavailable logged and the later accounts overdue",
        15,
    )
    assert worker.process.poll() is None, "the worker keeps running without its store"
    assert not worker.events("store_available")
    up_at = now_ms()  # the restart begins: anything stored from now on is after the outage
    assert up_at - down_at >= 2_000
    await asyncio.to_thread(stack.server.start)
    after = await stack.accounts(early)
    assert all(
        stack.core.accounts.refresh_token(after[a]) == stack.core.accounts.refresh_token(before[a])
        for a in early
    ), "the AOF kept the rotated refresh tokens"
    await stack.wait_until(lambda: refreshed(later, up_at), "the overdue accounts refreshed", 20)
    await stack.wait_until(
        lambda: bool(worker.events("store_available")), "the reconnection logged", 5
    )
    assert worker.process.poll() is None
    assert await worker.stop() == 0
    accounts = await stack.accounts(early + later)
    assert all(a.status == "active" and a.attempts == 0 for a in accounts.values())
    assert idp.stats()["refresh_requests"] == 20
    assert stack.refresh_at_provider(accounts) == {}, "stored refresh tokens are the latest"


@pytest.mark.timeout(90)
async def test_refresh_in_flight_when_redis_goes_away_keeps_its_token(
    make_stack: MakeStack, idp: Idp
) -> None:
    """Tokens rotated while Redis is down are stored once it is back, never dropped."""
    stack = await make_stack(
        idp,
        TOKENBROKER_REDIS_TIMEOUT_S="0.5",
        TOKENBROKER_LEASE_MS="3000",
        TOKENBROKER_LOCK_MS="12000",
    )
    ids = [f"inflight{i}" for i in range(5)]
    await stack.add_accounts(ids, expires_in_ms=120_000, lifetime_ms=HOUR_MS)
    idp.faults([{"kind": "delay_ms", "ms": 2_000}] * 5)
    worker = stack.spawn("worker")
    await stack.wait_until(
        lambda: idp.stats()["refresh_requests"] >= 5, "5 refreshes at the provider", 20
    )
    asked = now_ms()
    await asyncio.to_thread(stack.server.stop)
    # the provider rotates the tokens and answers 2 s after each request, into the outage
    await stack.wait_until(
        lambda: bool(worker.events("store_unavailable")) and now_ms() > asked + 3_000,
        "the provider's answers, with the store down",
        15,
    )
    await asyncio.to_thread(stack.server.start)

    async def refreshed() -> bool:
        accounts = await stack.accounts(ids)
        lost = {a: x.last_error for a, x in accounts.items() if x.status != "active"}
        assert not lost, f"rotated refresh tokens were lost: {lost}\n{stack.diagnostics()}"
        return all(a.refreshed_at_ms for a in accounts.values())

    await stack.wait_until(refreshed, "the rotated tokens stored", 30)
    assert await worker.stop() == 0
    assert idp.stats()["refresh_requests"] == 5, "each account refreshed once"
    accounts = await stack.accounts(ids)
    assert stack.refresh_at_provider(accounts) == {}, "stored refresh tokens are the latest"


@pytest.mark.timeout(90)
async def test_provider_errors_timeouts_and_throttling_are_ridden_out(
    make_stack: MakeStack, idp: Idp
) -> None:
    """500s, 503s, 429s, timeouts and drops for a while: accounts stay active, then recover."""
    stack = await make_stack(
        idp,
        TOKENBROKER_PROVIDER_TIMEOUT_S="1",
        TOKENBROKER_WORKER_CONCURRENCY="12",
        TOKENBROKER_LEASE_MS="10000",
    )
    ids = [f"f{i:02d}" for i in range(12)]
    await stack.add_accounts(ids, expires_in_ms=120_000, lifetime_ms=HOUR_MS)
    start = now_ms()
    kinds: list[dict[str, object]] = [
        {"kind": "status", "status": 500},
        {"kind": "status", "status": 503, "retry_after": 1},
        {"kind": "status", "status": 429, "retry_after": 1},
        {"kind": "hang", "ms": 3_000},  # sent, then the socket closes: the answer is lost
        {"kind": "drop"},
        {"kind": "error", "status": 500, "error": "server_error"},
    ]
    faults = kinds * 3  # 18: every account fails once, half of them twice
    idp.faults(faults)
    expected = Counter(["http_500"] * 3 + ["http_503"] * 3 + ["http_429"] * 3)
    expected.update(["network"] * 6 + ["server_error"] * 3)
    worker = stack.spawn("worker")
    most_attempts: Counter[str] = Counter()

    async def recovered() -> bool:
        accounts = await stack.accounts(ids)
        for account_id, account in accounts.items():
            assert account.status == "active", (account.public(), stack.diagnostics())
            most_attempts[account_id] = max(most_attempts[account_id], account.attempts)
        return all((a.refreshed_at_ms or 0) > start for a in accounts.values())

    await stack.wait_until(recovered, "every account recovered", 50)
    assert await worker.stop() == 0
    assert idp.stats()["faults_pending"] == 0
    assert idp.stats()["refresh_requests"] == 12 + len(faults)
    assert sorted(most_attempts.values()) == [1] * 6 + [2] * 6
    accounts = await stack.accounts(ids)
    assert all(a.attempts == 0 and a.last_error is None for a in accounts.values())
    assert all(a.status == "active" for a in accounts.values())
    assert not [e for e in await stack.partition_events() if e["event"] == "authenticationError"]
    failed = worker.events("refresh_failed")
    assert {line["kind"] for line in failed} == {"transient"}
    assert Counter(str(line["error"]) for line in failed) == expected
    assert stack.refresh_at_provider(accounts) == {}, "stored refresh tokens are the latest"


@pytest.mark.timeout(90)
async def test_sigterm_drains_hands_back_and_health_check(make_stack: MakeStack, idp: Idp) -> None:
    """SIGTERM stops claiming, finishes or hands back within the grace, exits 0; --check."""
    stack = await make_stack(
        idp,
        TOKENBROKER_WORKER_CONCURRENCY="4",
        TOKENBROKER_LEASE_MS="60000",
        TOKENBROKER_LOCK_MS="70000",
        TOKENBROKER_PROVIDER_TIMEOUT_S="30",
        TOKENBROKER_SHUTDOWN_GRACE_S="30",
    )
    health = Path(stack.env["TOKENBROKER_WORKER_HEALTH_FILE"])
    ids = [f"s{i:02d}" for i in range(12)]
    await stack.add_accounts(ids, expires_in_ms=120_000, lifetime_ms=HOUR_MS)
    imported = await stack.scores(ids)
    assert await stack.check("--check") == 1, "no heartbeat file yet"

    # 1. in-flight refreshes that can finish within the grace period do
    idp.faults([{"kind": "delay_ms", "ms": 2_000}] * 4)
    first = stack.spawn("first")
    await stack.wait_until(
        lambda: idp.stats()["refresh_requests"] >= 4, "4 refreshes in flight", 20
    )
    assert idp.stats()["refresh_requests"] == 4
    signalled = time.monotonic()
    assert await first.stop() == 0
    # well inside the 30 s grace (2 s answers); a loaded machine may take some seconds to exit
    assert time.monotonic() - signalled < 15, "finished with the in-flight refreshes"
    assert await asyncio.to_thread(health.exists), "it had beaten"
    assert idp.stats()["refresh_requests"] == 4, "no claim after SIGTERM"
    accounts = await stack.accounts(ids)
    done = [a for a in ids if accounts[a].refreshed_at_ms]
    assert len(done) == 4
    rest = [a for a in ids if a not in done]
    scores = await stack.scores(ids)
    assert all((scores[a] or 0) > now_ms() + 30 * 60_000 for a in done)
    assert {a: scores[a] for a in rest} == {a: imported[a] for a in rest}, "left as they were"
    stale_heartbeat(health)
    assert await stack.check("--check") == 1, "a stale heartbeat is unhealthy"

    # 2. a refresh at the provider is never cancelled (the provider may rotate the token);
    #    a sent refresh is awaited until its answer comes or the answer cap ends it
    idp.faults([{"kind": "hang", "ms": 20_000}] * 4)
    second = stack.spawn(
        "second",
        TOKENBROKER_SHUTDOWN_GRACE_S="2",
        TOKENBROKER_PROVIDER_TIMEOUT_S="2",
        TOKENBROKER_PROVIDER_ANSWER_MAX_S="2",
    )
    await stack.wait_until(lambda: idp.stats()["refresh_requests"] >= 8, "4 more in flight", 20)
    assert await stack.check("--check") == 0, "the running worker beats again"
    leased = [a for a, s in (await stack.scores(rest)).items() if s is not None and s > now_ms()]
    assert len(leased) == 4
    signalled = time.monotonic()
    assert await second.stop() == 0
    # the 2 s answer cap ends the hung calls long before their 20 s hang
    assert time.monotonic() - signalled < 15, "done without waiting for the hung calls"
    retried = await stack.scores(leased)
    assert all(s is not None and s < now_ms() + 10_000 for s in retried.values()), (
        "timed out calls are retried soon, not left to the 60 s lease"
    )
    assert not any(a.refreshed_at_ms for a in (await stack.accounts(rest)).values())
    stale_heartbeat(health)
    assert await stack.check("--check") == 1, "no worker beats any more"

    # 3. the next worker picks the handed-back accounts up at once (the lease is 60 s)
    third = stack.spawn("third")

    async def all_refreshed() -> bool:
        return all(a.refreshed_at_ms for a in (await stack.accounts(ids)).values())

    await stack.wait_until(all_refreshed, "every account refreshed", 20)
    assert await third.stop() == 0
    assert idp.stats()["refresh_requests"] == 8 + len(rest)
    accounts = await stack.accounts(ids)
    assert stack.refresh_at_provider(accounts) == {}, "stored refresh tokens are the latest"
