"""`make bench-scale`: a million accounts end to end, from the streaming import to the pages.

One private Redis (tokenbroker's settings) and the fake provider. In order: import a tenth of
the accounts with `tokenbroker import`, export them (peak RSS at a tenth), import the rest;
Redis memory per account; schedule_claim with every account in one schedule; one worker
refreshing accounts made due among all of them (rate and due-to-refresh lag); export all
(time and peak RSS, which must not grow with the accounts); the admin accounts page and a
search against a web process. Minutes, not hours; `--accounts` scales it down.
"""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import aiohttp

from service.admin_auth import AdminAuth
from service.core import Core
from service.schedule import Schedule, new_claim_id
from tests.bench import refresh_worker as rw
from tests.bench.scale_file import Template, account_id, write_accounts
from tests.bench.token_endpoint import TOKENBROKER, BenchError, start_server
from tests.support.bench import accounts_main, run_measure, start_redis
from tests.support.processes import now_ms

ACCOUNTS = 1_000_000
DUE = 10_000  # accounts the worker refreshes among all of them
DRAIN_TIMEOUT_S = 600
CLAIM_BATCH, CLAIM_ROUNDS = 64, 300
PAGE_ROUNDS = 20
PASSWORD = "bench-admin-password"


@dataclass(frozen=True)
class Run:
    """One CLI command: wall seconds and the peak resident set of its process."""

    wall_s: float
    peak_rss_mb: float


def run_cli(args: list[str], env: dict[str, str], log: Path) -> Run:
    """Run `tokenbroker ARGS` to completion; BenchError with its log tail when it fails."""
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen([str(TOKENBROKER), *args], env=env, stdout=out, stderr=out)
        _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise BenchError(f"tokenbroker {args[0]} exited {process.returncode}:\n{log.read_text()}")
    return Run(wall, usage.ru_maxrss / 1024)


def percentiles(samples: list[float]) -> str:
    """p50/p95 of `samples` in milliseconds."""
    ordered = sorted(samples)
    return f"{ordered[len(ordered) // 2]:.1f}/{ordered[int(len(ordered) * 0.95)]:.1f}"


async def template(bench: rw.Bench) -> Template:
    """An account stored the service's own way, read back as the template of every other."""
    await rw.save_accounts(bench.core, ["scale-template"], now_ms() + rw.PARKED_MS)
    key = bench.core.keys.account("scale-template")
    fields = cast(dict[str, str], await bench.core.redis.hgetall(key))
    return Template.of(bench.core.keys, bench.core.cipher, "scale-template", fields)


async def used_memory(core: Core) -> int:
    """Redis' used_memory, in bytes."""
    return int((await core.redis.info("memory"))["used_memory"])


async def claim_cost(core: Core, total: int) -> str:
    """schedule_claim of CLAIM_BATCH due members with every account in one schedule."""
    schedule, now = Schedule(core.redis, core.keys, core.scripts), now_ms()
    due = {account_id(i): now - 1000 for i in random.sample(range(total), CLAIM_BATCH)}
    await rw.make_due(core, due)
    await core.redis.config_resetstat()
    times = []
    for _ in range(CLAIM_ROUNDS):
        started = time.perf_counter()
        claimed = await schedule.claim(0, now, rw.LEASE_MS, CLAIM_BATCH, new_claim_id())
        times.append((time.perf_counter() - started) * 1000)
        if len(claimed) != CLAIM_BATCH:
            raise BenchError(f"claimed {len(claimed)} of {CLAIM_BATCH} due members")
        await core.redis.zadd(core.keys.schedule(0), dict(claimed), xx=True)
    stats = await core.redis.info("commandstats")
    server = (stats.get("cmdstat_evalsha") or stats["cmdstat_eval"])["usec_per_call"]
    await rw.make_due(core, dict.fromkeys(due, now + rw.PARKED_MS))
    return f"{percentiles(times)} ms p50/p95 round trip (redis {float(server):.0f} us/call)"


async def refresh_run(bench: rw.Bench, total: int) -> str:
    """One worker refreshes DUE accounts made due now among `total`: rate and lag."""
    ids = [account_id(i) for i in random.sample(range(total), min(DUE, total))]
    workers = rw.start_workers(bench, 1, "scale")
    try:
        before = await rw.snapshot(bench, workers)
        start = now_ms()
        await expiring(bench.core, ids, start + rw.EXPIRES_IN_MS)
        await rw.make_due(bench.core, dict.fromkeys(ids, start))
        await rw.wait_refreshed(bench, workers, start, DRAIN_TIMEOUT_S)
        after = await rw.snapshot(bench, workers)
    finally:
        rw.stop_workers(workers)
    lags, missing = await lags_of(bench.core, ids, start)
    done = after.granted - before.granted
    rate, cpu = done / (after.at - before.at), done / (after.workers_cpu - before.workers_cpu)
    return (
        f"{rate:,.0f} refreshes/s, {cpu:,.0f}/worker CPU-s; lag p50 {lags[len(lags) // 2]:.2f} s, "
        f"max {lags[-1]:.2f} s ({len(ids):,} due at once, {missing} not refreshed)"
    )


async def lags_of(core: Core, ids: list[str], due: int) -> tuple[list[float], int]:
    """Seconds from `due` to each account's refreshedAt, sorted; how many have none."""
    async with core.redis.pipeline(transaction=False) as pipe:
        for account in ids:
            pipe.hget(core.keys.account(account), "refreshedAt")
        stamps: list[str | None] = await pipe.execute()
    lags = sorted((int(s) - due) / 1000 for s in stamps if s is not None)
    if not lags:
        raise BenchError("no account made due was refreshed")
    return lags, len(ids) - len(lags)


async def expiring(core: Core, ids: list[str], expires_ms: int) -> None:
    """Let the access tokens of `ids` expire at `expires_ms` (soon enough to need a refresh)."""
    async with core.redis.pipeline(transaction=False) as pipe:
        for account in ids:
            pipe.hset(core.keys.account(account), "expiresAt", str(expires_ms))
        await pipe.execute()


async def page_latency(bench: rw.Bench, tmp: Path) -> tuple[str, str]:
    """GET /admin/accounts and a search PAGE_ROUNDS times each against a web process."""
    await AdminAuth(bench.core.redis, bench.core.keys).set_password(PASSWORD)
    with contextlib.ExitStack() as stack:
        args = [str(TOKENBROKER), "web", "--port"]
        base, _ = start_server(stack, args, bench.env, tmp / "web.log")
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(base, cookie_jar=jar) as http:
            await _login(http)
            pages = [await _timed(http, "/admin/accounts") for _ in range(PAGE_ROUNDS)]
            found = [
                await _timed(http, f"/admin/accounts?q=scale-{random.randrange(10**6):07d}"[:-2])
                for _ in range(PAGE_ROUNDS)
            ]
    return percentiles(pages), percentiles(found)


async def _login(http: aiohttp.ClientSession) -> None:
    async with http.get("/admin/login") as resp:
        page = await resp.text()
    token = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
    form = {"csrf": token, "user": "admin", "password": PASSWORD, "next": "/admin/"}
    async with http.post("/admin/login", data=form, allow_redirects=False) as resp:
        if resp.status != 303:
            raise BenchError(f"admin login answered {resp.status}")


async def _timed(http: aiohttp.ClientSession, path: str) -> float:
    started = time.perf_counter()
    async with http.get(path) as resp:
        await resp.read()
        if resp.status != 200:
            raise BenchError(f"GET {path} answered {resp.status}")
    return (time.perf_counter() - started) * 1000


async def measure(bench: rw.Bench, total: int) -> str:
    """Every phase in turn; the report."""
    await rw.create_app(bench.core, bench.provider_url)
    model, core = await template(bench), bench.core
    first = max(1, total // 10)
    files = (bench.tmp / "first.jsonl", bench.tmp / "rest.jsonl")
    print(f"bench: writing {total:,} accounts to export files", file=sys.stderr)
    write_accounts(files[0], range(first), model, core.keys, core.cipher, now_ms())
    write_accounts(files[1], range(first, total), model, core.keys, core.cipher, now_ms())
    before = await used_memory(core)
    print("bench: importing", file=sys.stderr)
    part = run_cli(["import", str(files[0])], bench.env, bench.tmp / "import1.log")
    small = run_cli(["export", str(bench.tmp / "out1.jsonl")], bench.env, bench.tmp / "ex1.log")
    rest = run_cli(["import", str(files[1])], bench.env, bench.tmp / "import2.log")
    per_account = (await used_memory(core) - before) / total
    print("bench: claim, refresh, export, pages", file=sys.stderr)
    claim = await claim_cost(core, total)
    refresh = await refresh_run(bench, total)
    full = run_cli(["export", str(bench.tmp / "out.jsonl")], bench.env, bench.tmp / "ex.log")
    page, search = await page_latency(bench, bench.tmp)
    rss = f"peak RSS {full.peak_rss_mb:.0f} MB (at {first:,} accounts: {small.peak_rss_mb:.0f} MB)"
    return "\n".join(
        [
            f"scale: {total:,} accounts, one schedule, {os.cpu_count()} CPUs shared by all",
            f"{'import (tokenbroker import)':<32}{total / (part.wall_s + rest.wall_s):,.0f} "
            f"accounts/s ({part.wall_s + rest.wall_s:.1f} s)",
            f"{'Redis memory':<32}{per_account:,.0f} bytes/account",
            f"{'schedule_claim of ' + str(CLAIM_BATCH):<32}{claim}",
            f"{'worker refresh':<32}{refresh}",
            f"{'export (tokenbroker export)':<32}{full.wall_s:.1f} s, {rss}",
            f"{'admin accounts page':<32}{page} ms p50/p95",
            f"{'admin search (id prefix)':<32}{search} ms p50/p95",
        ]
    )


def run(stack: contextlib.ExitStack, total: int) -> str:
    """Start Redis and the fake provider, then measure; the report."""
    tmp, redis, redis_pid = start_redis(stack)
    args = [sys.executable, "-m", "tests.bench.fake_provider", "--port"]
    provider_url, provider = start_server(stack, args, dict(os.environ), tmp / "provider.log")
    env = rw.base_env(redis.url, rw.DEFAULT_POLL_MS)

    async def measured(core: Core, http: aiohttp.ClientSession) -> str:
        bench = rw.Bench(stack, tmp, env, core, http, provider, provider_url, redis_pid)
        return await measure(bench, total)

    return run_measure(env, measured)


def main() -> int:
    """Run the benchmark; exit 0 with the report, non-zero on any setup error."""
    return accounts_main(__doc__, ACCOUNTS, run)


if __name__ == "__main__":
    sys.exit(main())
