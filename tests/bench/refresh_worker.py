"""`make bench`: refresh-worker throughput and CPU, schedule claim cost, and due-to-start lag."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import math
import os
import random
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp
import orjson
from redis.asyncio import Redis

from service.accounts import AccountWrite
from service.clock import iso
from service.core import Core
from service.schedule import Schedule, new_claim_id
from service.store.embedded import free_port
from service.store.keys import Keys
from tests.bench.token_endpoint import TOKENBROKER, BenchError, spawn, start_server, wait_healthy
from tests.support.bench import bench_main, run_measure, start_redis
from tests.support.processes import cpu_seconds, now_ms, stop_processes, tail

ACCOUNTS = 10_000
LAG_ACCOUNTS, LAG_WINDOW_MS, LAG_START_MS = 3_000, 20_000, 1_000
CONCURRENCY, DEFAULT_POLL_MS, LEASE_MS = 64, 50, 60_000
SAVE_CONCURRENCY = 64
LIFETIME_MS, EXPIRES_IN_MS = 3_600_000, 300_000  # saved tokens: 1 h grants with 5 min left
PARKED_MS = 86_000_000  # saved "not yet due" (about a day ahead) until a run makes them due
HORIZON_MS = 1_800_000  # refreshed accounts come due ~54 min later; claimed ones within a lease
RUN_TIMEOUT_S = 90.0
CLAIM_SIZES, CLAIM_BATCH, CLAIM_WARMUP, CLAIM_ROUNDS = (10_000, 1_000_000), 64, 50, 1000
FILL_CHUNK, FILL_PIPELINE = 10_000, 10
APP_ID, SCOPES = "fake", ["openid", "email", "profile"]
TARGET_PER_CPU_S, TARGET_CLAIM_RATIO, TARGET_LAG_P99_S = 1000.0, 1.5, 1.0
LAG_BUCKET = re.compile(r'^tokenbroker_refresh_lag_seconds_bucket\{le="([^"]+)"\} (\S+)$', re.M)


@dataclass(frozen=True)
class WorkerProcess:
    """One `tokenbroker worker` process with its metrics port and log."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path


@dataclass(frozen=True)
class Snapshot:
    """Counters at one instant: provider grants, CPU seconds of workers, provider, redis."""

    at: float
    granted: int
    workers_cpu: float
    provider_cpu: float
    redis_cpu: float


@dataclass(frozen=True)
class Throughput:
    """One drain of every due account by `workers` processes."""

    workers: int
    refreshes: int
    wall_s: float
    workers_cpu_s: float
    provider_cpu_s: float
    redis_cpu_s: float

    @property
    def rate(self) -> float:
        """Refreshes per wall second."""
        return self.refreshes / self.wall_s

    @property
    def per_cpu(self) -> float:
        """Refreshes per CPU second of the worker processes."""
        return self.refreshes / self.workers_cpu_s


@dataclass(frozen=True)
class ClaimCost:
    """Round-trip times of schedule_claim at one sorted-set size, and Redis' own time."""

    members: int
    mean_ms: float
    p50_ms: float
    server_us: float


@dataclass(frozen=True)
class Lag:
    """Refresh lag after due time: exact upper bounds from Redis, and the worker's histogram."""

    count: int
    p50_s: float
    p99_s: float
    max_s: float
    bucket_p99_s: float


@dataclass
class Bench:
    """What every phase uses: processes' environment, the service's Core, the provider."""

    stack: contextlib.ExitStack
    tmp: Path
    env: dict[str, str]
    core: Core
    http: aiohttp.ClientSession
    provider: subprocess.Popen[bytes]
    provider_url: str
    redis_pid: int


def base_env(redis_url: str, poll_ms: int) -> dict[str, str]:
    """The environment of every worker process (and of the bench's own Config)."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "TOKENBROKER_SECRET": base64.b64encode(os.urandom(32)).decode(),
        "TOKENBROKER_LOG_FORMAT": "json",
        "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",
        "TOKENBROKER_WORKER_CONCURRENCY": str(CONCURRENCY),
        "TOKENBROKER_APP_RATE_PER_S": "100000",
        "TOKENBROKER_POLL_MS": str(poll_ms),
        "TOKENBROKER_LEASE_MS": str(LEASE_MS),
        "TOKENBROKER_PROVIDER_TIMEOUT_S": "5",
        "TOKENBROKER_SHUTDOWN_GRACE_S": "5",  # at least the provider timeout
    }


def start_workers(bench: Bench, count: int, name: str) -> list[WorkerProcess]:
    """Start `count` worker processes; return once each serves its /metrics."""
    started = []
    for index in range(count):
        port, log = free_port(), bench.tmp / f"worker-{name}-{index}.log"
        env = {
            **bench.env,
            "TOKENBROKER_WORKER_METRICS_PORT": str(port),
            "TOKENBROKER_WORKER_HEALTH_FILE": str(bench.tmp / f"worker-{name}-{index}.health"),
        }
        process = spawn(bench.stack, [str(TOKENBROKER), "worker"], env, log)
        started.append(WorkerProcess(process, port, log))
    for worker in started:
        wait_healthy(f"http://127.0.0.1:{worker.port}/metrics", worker.process, worker.log)
    return started


def stop_workers(workers: list[WorkerProcess]) -> list[int | None]:
    """SIGTERM every worker and wait (kill after 10 s); return their exit codes."""
    return stop_processes([worker.process for worker in workers])


def account_write(account: str, now: int) -> AccountWrite:
    """An imported account: tokens with 5 of 60 minutes left."""
    return AccountWrite(
        app=APP_ID,
        provider="oidc",
        user=f"{account}@example.test",
        access_token=f"at-{os.urandom(12).hex()}",
        refresh_token=f"rt-{os.urandom(12).hex()}",
        scopes=list(SCOPES),
        expires_at_ms=now + EXPIRES_IN_MS,
        lifetime_ms=LIFETIME_MS,
    )


async def save_accounts(core: Core, ids: list[str], due: int) -> None:
    """Create or reset accounts through AccountStore.save, all scheduled at `due`."""
    limit = asyncio.Semaphore(SAVE_CONCURRENCY)

    async def one(account: str) -> None:
        async with limit:
            now = now_ms()
            write = account_write(account, now)
            await core.accounts.save(account, write, due, now, {"user": account})

    await asyncio.gather(*(one(account) for account in ids))


async def make_due(core: Core, dues: dict[str, int]) -> None:
    """Move scheduled accounts to the given due times in one pipeline."""
    async with core.redis.pipeline(transaction=False) as pipe:
        for account, due in dues.items():
            pipe.zadd(core.keys.schedule(core.keys.partition_of(account)), {account: due}, xx=True)
        await pipe.execute()


async def granted(bench: Bench) -> int:
    """How many refresh grants the fake provider has answered (failing on any bad request)."""
    async with bench.http.get(f"{bench.provider_url}/stats") as response:
        counts = orjson.loads(await response.read())
    if counts["bad_requests"]:
        raise BenchError(f"the fake provider received {counts['bad_requests']} bad requests")
    return int(counts["refresh_requests"])


async def snapshot(bench: Bench, workers: list[WorkerProcess]) -> Snapshot:
    """Read every counter now."""
    return Snapshot(
        at=time.perf_counter(),
        granted=await granted(bench),
        workers_cpu=sum(cpu_seconds(w.process.pid) for w in workers),
        provider_cpu=cpu_seconds(bench.provider.pid),
        redis_cpu=cpu_seconds(bench.redis_pid),
    )


async def wait_refreshed(
    bench: Bench, workers: list[WorkerProcess], since_ms: int, timeout_s: float = RUN_TIMEOUT_S
) -> None:
    """Wait until no account is due before `since_ms` + HORIZON_MS (all refreshed since)."""
    schedule = Schedule(bench.core.redis, bench.core.keys, bench.core.scripts)
    deadline = time.monotonic() + timeout_s + (since_ms - now_ms()) / 1000
    while (left := (await schedule.depth(since_ms + HORIZON_MS))[1]) > 0:
        for worker in workers:
            if worker.process.poll() is not None:
                raise BenchError(
                    f"a worker exited ({worker.process.returncode}):\n" + tail(worker.log)
                )
        if time.monotonic() > deadline:
            raise BenchError(f"{left} accounts not refreshed in time:\n{tail(workers[0].log)}")
        await asyncio.sleep(0.02)


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample `pid` for 8 s with py-spy (raw collapsed stacks to `out`) while the block runs."""
    if out is None:
        yield
        return
    spy = Path(sys.prefix) / "bin" / "py-spy"
    args = [str(spy), "record", "--format", "raw", "-o", str(out), "--pid", str(pid), "-d", "8"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        _, err = process.communicate(timeout=60)
        if process.returncode != 0:
            raise BenchError(f"py-spy exited {process.returncode}: {err.decode()}")


async def throughput(bench: Bench, count: int, profile: Path | None = None) -> Throughput:
    """Reset every account to a short-lived token, start `count` workers, make all due, drain."""
    ids = [f"bench-{index:05d}" for index in range(ACCOUNTS)]
    await save_accounts(bench.core, ids, now_ms() + PARKED_MS)
    workers = start_workers(bench, count, f"x{count}")
    try:
        before = await snapshot(bench, workers)
        start = now_ms()
        with py_spy(workers[0].process.pid, profile):
            await make_due(bench.core, dict.fromkeys(ids, start))
            await wait_refreshed(bench, workers, start)
            after = await snapshot(bench, workers)
    finally:
        codes = stop_workers(workers)
    if any(code != 0 for code in codes):
        raise BenchError(f"workers exited with {codes}:\n{tail(workers[0].log)}")
    refreshes = after.granted - before.granted
    if refreshes < ACCOUNTS:
        raise BenchError(f"only {refreshes} grants for {ACCOUNTS} due accounts")
    if refreshes > ACCOUNTS:
        print(f"bench: {refreshes - ACCOUNTS} accounts were refreshed twice", file=sys.stderr)
    return Throughput(
        workers=count,
        refreshes=refreshes,
        wall_s=after.at - before.at,
        workers_cpu_s=after.workers_cpu - before.workers_cpu,
        provider_cpu_s=after.provider_cpu - before.provider_cpu,
        redis_cpu_s=after.redis_cpu - before.redis_cpu,
    )


def bucket_quantile(metrics: str, quantile: float) -> float:
    """Upper bound of the lag histogram's bucket that holds the quantile."""
    buckets = [(float(le), float(count)) for le, count in LAG_BUCKET.findall(metrics)]
    if not buckets or not buckets[-1][1]:
        raise BenchError("the worker's /metrics has no tokenbroker_refresh_lag_seconds samples")
    total = buckets[-1][1]
    return next(le for le, count in buckets if count >= quantile * total)


async def scrape(bench: Bench, worker: WorkerProcess) -> str:
    """The worker's /metrics text."""
    async with bench.http.get(f"http://127.0.0.1:{worker.port}/metrics") as response:
        return await response.text()


async def exact_lags(core: Core, dues: dict[str, int]) -> list[float]:
    """Seconds from due to refreshedAt, sorted (an upper bound of due to refresh start)."""
    async with core.redis.pipeline(transaction=False) as pipe:
        for account in dues:
            pipe.hget(core.keys.account(account), "refreshedAt")
        stamps = cast(list[str | None], await pipe.execute())
    missing = [account for account, stamp in zip(dues, stamps, strict=True) if stamp is None]
    if missing:
        raise BenchError(f"{len(missing)} lag accounts were never refreshed, e.g. {missing[0]}")
    lags = [(int(cast(str, s)) - due) / 1000 for s, due in zip(stamps, dues.values(), strict=True)]
    return sorted(lags)


async def lag_run(bench: Bench) -> Lag:
    """How late refreshes start: one worker, accounts due uniformly over LAG_WINDOW_MS."""
    ids = [f"lag-{index:05d}" for index in range(LAG_ACCOUNTS)]
    await save_accounts(bench.core, ids, now_ms() + PARKED_MS)
    workers = start_workers(bench, 1, "lag")
    try:
        first, step = now_ms() + LAG_START_MS, LAG_WINDOW_MS / LAG_ACCOUNTS
        dues = {account: first + int(index * step) for index, account in enumerate(ids)}
        await make_due(bench.core, dues)
        await wait_refreshed(bench, workers, first + LAG_WINDOW_MS)
        metrics = await scrape(bench, workers[0])
    finally:
        stop_workers(workers)
    lags = await exact_lags(bench.core, dues)
    return Lag(
        count=len(lags),
        p50_s=lags[len(lags) // 2],
        p99_s=lags[math.ceil(len(lags) * 0.99) - 1],
        max_s=lags[-1],
        bucket_p99_s=bucket_quantile(metrics, 0.99),
    )


async def fill(redis: Redis, key: str, start: int, end: int, now: int) -> None:
    """ZADD members start..end-1 with due times uniform over [now - 1 h, now + 23 h)."""
    rng = random.Random(start)
    low, high = now - 3_600_000, now + 82_800_000
    for base in range(start, end, FILL_CHUNK * FILL_PIPELINE):
        async with redis.pipeline(transaction=False) as pipe:
            for chunk in range(base, min(base + FILL_CHUNK * FILL_PIPELINE, end), FILL_CHUNK):
                top = min(chunk + FILL_CHUNK, end)
                pipe.zadd(key, {f"m{i:07d}": rng.randrange(low, high) for i in range(chunk, top)})
            await pipe.execute()


async def quiesce(redis: Redis) -> None:
    """Wait until Redis runs no AOF rewrite or snapshot in the background (they fork)."""
    deadline = time.monotonic() + 60
    busy = ("aof_rewrite_in_progress", "aof_rewrite_scheduled", "rdb_bgsave_in_progress")
    while True:
        info = await redis.info("persistence")
        if not any(int(info[name]) for name in busy):
            return
        if time.monotonic() > deadline:
            raise BenchError(f"Redis still busy in the background: {info}")
        await asyncio.sleep(0.1)


async def time_claims(redis: Redis, schedule: Schedule, members: int, now: int) -> ClaimCost:
    """Claim CLAIM_BATCH due members and put them back, CLAIM_ROUNDS times (after a warm-up)."""
    key = schedule.keys.schedule(0)
    times: list[float] = []
    for round_ in range(CLAIM_WARMUP + CLAIM_ROUNDS):
        if round_ == CLAIM_WARMUP:
            await redis.config_resetstat()
        started = time.perf_counter()
        claimed = await schedule.claim(0, now, LEASE_MS, CLAIM_BATCH, new_claim_id())
        elapsed = time.perf_counter() - started
        if len(claimed) != CLAIM_BATCH:
            raise BenchError(f"claimed {len(claimed)} of {CLAIM_BATCH} due members")
        await redis.zadd(key, dict(claimed), xx=True)  # back at their due times
        if round_ >= CLAIM_WARMUP:
            times.append(elapsed * 1000)
    stats = await redis.info("commandstats")
    evalsha = stats.get("cmdstat_evalsha") or stats["cmdstat_eval"]
    times.sort()
    return ClaimCost(
        members=members,
        mean_ms=sum(times) / len(times),
        p50_ms=times[len(times) // 2],
        server_us=float(evalsha["usec_per_call"]),
    )


async def claim_costs(bench: Bench) -> list[ClaimCost]:
    """schedule_claim on one partition holding 10,000 and then 1,000,000 members."""
    redis = bench.core.redis
    schedule = Schedule(redis, Keys("tbclaim", 1), bench.core.scripts)
    key, now, filled = schedule.keys.schedule(0), now_ms(), 0
    costs = []
    try:
        for size in CLAIM_SIZES:
            print(f"bench: schedule_claim over {size:,} members", file=sys.stderr)
            await fill(redis, key, filled, size, now)
            filled = size
            if await redis.zcard(key) != size:
                raise BenchError(f"the claim set holds {await redis.zcard(key)}, not {size}")
            await quiesce(redis)
            costs.append(await time_claims(redis, schedule, size, now))
    finally:
        await redis.unlink(key)
    return costs


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def _throughput_rows(runs: list[Throughput]) -> list[str]:
    rows = []
    for run in runs:
        label = f"{run.workers} worker{'s' if run.workers > 1 else ''}"
        rows.append(f"{label + ' refreshes/s (wall)':<40}{run.rate:>12,.0f}{'':>14}")
        rows.append(
            f"{label + ' refreshes/worker CPU-s':<40}{run.per_cpu:>12,.0f}"
            f"{'>= ' + format(TARGET_PER_CPU_S, ',.0f'):>14}  "
            + verdict(run.per_cpu >= TARGET_PER_CPU_S)
        )
    for run in runs:
        rows.append(
            f"  ({run.workers}w: {run.refreshes:,} refreshes in {run.wall_s:.2f} s; CPU-s: workers "
            f"{run.workers_cpu_s:.2f}, provider {run.provider_cpu_s:.2f}, "
            f"redis {run.redis_cpu_s:.2f})"
        )
    return rows


def _claim_rows(costs: list[ClaimCost]) -> list[str]:
    rows = [
        f"{f'claim {CLAIM_BATCH} @ {c.members:,} mean/p50 ms':<40}"
        f"{f'{c.mean_ms:.3f}/{c.p50_ms:.3f}':>12}{'':>14}  (redis {c.server_us:.0f} us/call)"
        for c in costs
    ]
    small, large = costs
    ratio = large.p50_ms / small.p50_ms
    rows.append(
        f"{'claim ratio 1M/10k (p50 round trip)':<40}{ratio:>12.2f}"
        f"{'<= ' + str(TARGET_CLAIM_RATIO):>14}  {verdict(ratio <= TARGET_CLAIM_RATIO)}"
        f"  (redis-side ratio {large.server_us / small.server_us:.2f})"
    )
    return rows


def _lag_rows(lag: Lag) -> list[str]:
    ok = lag.p99_s < TARGET_LAG_P99_S
    return [
        f"{'p99 lag, due -> refresh (s)':<40}{lag.p99_s:>12.3f}"
        f"{'< ' + format(TARGET_LAG_P99_S, 'g') + ' s':>14}  {verdict(ok)}",
        f"  ({lag.count:,} accounts due over {LAG_WINDOW_MS // 1000} s, 1 worker: "
        f"refreshedAt - due (an upper bound) p50 {lag.p50_s:.3f} s, max {lag.max_s:.3f} s; "
        f"histogram p99 <= {lag.bucket_p99_s:g} s, bucket resolution)",
    ]


def report(runs: list[Throughput], costs: list[ClaimCost], lag: Lag, poll_ms: int) -> str:
    """The result table."""
    head = (
        f"refresh worker: {ACCOUNTS:,} due accounts, provider answering at once, concurrency "
        f"{CONCURRENCY}, poll {poll_ms} ms, {os.cpu_count()} CPUs shared by all processes"
    )
    rows = [head, f"{'':<40}{'measured':>12}{'target':>14}"]
    return "\n".join(rows + _throughput_rows(runs) + _claim_rows(costs) + _lag_rows(lag))


async def create_app(core: Core, provider_url: str) -> None:
    """The oidc app whose token URL is the fake provider."""
    body = {
        "id": APP_ID,
        "provider": "oidc",
        "clientId": "bench",
        "clientSecret": "bench-secret",
        "tokenUrl": f"{provider_url}/token",
    }
    await core.apps.create(body, iso(now_ms()))


async def measure(bench: Bench, profile: Path | None) -> str:
    """Every phase in turn; returns the report."""
    await create_app(bench.core, bench.provider_url)
    runs = []
    for count in (1, 2):
        print(f"bench: {ACCOUNTS:,} due accounts, {count} worker(s)", file=sys.stderr)
        out = profile.with_name(f"{profile.stem}-{count}w{profile.suffix}") if profile else None
        runs.append(await throughput(bench, count, out))
    print(f"bench: lag, {LAG_ACCOUNTS:,} accounts due over {LAG_WINDOW_MS} ms", file=sys.stderr)
    lag = await lag_run(bench)
    costs = await claim_costs(bench)
    return report(runs, costs, lag, bench.core.config.poll_ms)


def run(stack: contextlib.ExitStack, profile: Path | None, poll_ms: int) -> str:
    """Start Redis and the fake provider, then measure; returns the report."""
    tmp, redis, redis_pid = start_redis(stack)
    args = [sys.executable, "-m", "tests.bench.fake_provider", "--port"]
    provider_url, provider = start_server(stack, args, dict(os.environ), tmp / "provider.log")
    env = base_env(redis.url, poll_ms)

    async def measured(core: Core, http: aiohttp.ClientSession) -> str:
        bench = Bench(stack, tmp, env, core, http, provider, provider_url, redis_pid)
        return await measure(bench, profile)

    return run_measure(env, measured)


def main() -> int:
    """Run the benchmark; exit 0 even when a target is missed, non-zero on any setup error."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--profile",
        type=Path,
        help="py-spy raw stacks (8 s) of the first worker of each run, to PATH-1w and PATH-2w",
    )
    parser.add_argument(
        "--poll-ms", type=int, default=DEFAULT_POLL_MS, help="TOKENBROKER_POLL_MS of the workers"
    )
    args = parser.parse_args()
    return bench_main(lambda stack: run(stack, args.profile, args.poll_ms))


if __name__ == "__main__":
    sys.exit(main())
