"""`make bench`: webhook delivery throughput of one `tokenbroker worker --only webhooks`.

N realistic events (service.webhooks.events.event_json) are appended to the outbox streams
with XADD in big pipelines, spread over the partitions (and a few app events in the global
outbox). The worker starts with webhooks off; turning them on starts the clock. A receiver in
its own process answers 200 at once, counts distinct webhook-ids and checks sampled signatures.
Measured: events delivered per wall second (first receiver hit -> the receiver has seen all N)
and per worker CPU-second (/proc/<pid>/stat). With --profile (or on a missed target) a second
run is sampled with py-spy (raw collapsed stacks) and a third counts the worker's Redis round
trips per event with MONITOR.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aiohttp
import orjson

from service.config import Config
from service.core import Core
from service.store.connection import create_redis
from service.store.embedded import free_port
from service.webhooks.deliveries import GROUP, Deliveries
from service.webhooks.events import event_json
from service.webhooks.secrets import WebhookSecrets
from tests.bench.token_endpoint import TOKENBROKER, BenchError, spawn, start_server, wait_healthy
from tests.support.bench import SETUP_ERRORS, bench_main, run_measure, start_redis
from tests.support.processes import cpu_seconds, now_ms, stop_processes, tail

EVENTS = 20_000
PARTITIONS = 4
CONCURRENCY = 256
POLL_MS = 50
XADD_PIPELINE = 5_000
RUN_TIMEOUT_S = 120.0
PROFILE_EVENTS, MONITOR_EVENTS = 20_000, 2_000
TARGET_PER_S = 1000.0
APP_ID = "gmail"
LOOP_SHARE = 0.8  # py-spy frames in more samples than this are the event loop's scaffolding
CONNECTION_SETUP = frozenset({"HELLO", "PING", "CLIENT", "AUTH", "SELECT"})
GLOBAL_EVERY = 1000  # one appCredentialsError in the global outbox per this many events


@dataclass(frozen=True)
class Run:
    """One drain of N queued events by one worker."""

    events: int
    requests: int
    wall_s: float  # first receiver hit -> the receiver has seen all N
    enable_wall_s: float  # webhooks turned on -> the receiver has seen all N
    worker_cpu_s: float
    receiver_cpu_s: float
    redis_cpu_s: float
    checked: int
    connections: int

    @property
    def rate(self) -> float:
        """Events delivered per wall second."""
        return self.events / self.wall_s

    @property
    def per_cpu(self) -> float:
        """Events delivered per worker CPU-second."""
        return self.events / self.worker_cpu_s


@dataclass
class Bench:
    """What every run uses: the environment, the service's Core, the receiver, Redis."""

    stack: contextlib.ExitStack
    tmp: Path
    env: dict[str, str]
    core: Core
    http: aiohttp.ClientSession
    receiver: subprocess.Popen[bytes]
    receiver_url: str
    redis_pid: int
    runs: int = 0


def base_env(redis_url: str) -> dict[str, str]:
    """The environment of the worker (and of the bench's own Config)."""
    return {
        **os.environ,
        "REDIS_URL": redis_url,
        "TOKENBROKER_SECRET": base64.b64encode(os.urandom(32)).decode(),
        "TOKENBROKER_LOG_FORMAT": "json",
        "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",
        "TOKENBROKER_SCHEDULE_PARTITIONS": str(PARTITIONS),
        "TOKENBROKER_POLL_MS": str(POLL_MS),
        "TOKENBROKER_WEBHOOK_CONCURRENCY": str(CONCURRENCY),
        "TOKENBROKER_WEBHOOK_TIMEOUT_S": "10",
        "TOKENBROKER_WEBHOOK_LEASE_MS": "60000",
    }


def realistic_event(index: int, now: int, rng: random.Random) -> tuple[str | None, str]:
    """(account or None for the global outbox, event JSON) like the service appends."""
    account = f"bench-{index:05d}"
    user = f"user{index}@example.com"
    if index % GLOBAL_EVERY == GLOBAL_EVERY - 1:
        data: dict[str, Any] = {
            "provider": "gmail",
            "clientId": "1234567890-abc.apps.googleusercontent.com",
            "error": "invalid_client",
            "error_description": "The OAuth client was not found.",
            "status": 401,
        }
        return None, event_json("appCredentialsError", None, APP_ID, data, now)
    roll = rng.random()
    if roll < 0.5:
        name, data = "accountAdded", {"user": user, "provider": "gmail"}
    elif roll < 0.8:
        name = "authenticationError"
        data = {
            "user": user,
            "provider": "gmail",
            "status": "reauth_required",
            "reason": "invalidGrant",
            "error": "invalid_grant",
            "error_description": "Token has been expired or revoked.",
            "httpStatus": 400,
        }
    elif roll < 0.9:
        name, data = "authenticationSuccess", {"user": user, "provider": "gmail"}
    else:
        name = "scopesMissing"
        data = {
            "user": user,
            "provider": "gmail",
            "missingScopes": ["https://mail.google.com/"],
            "source": "refresh",
        }
    return account, event_json(name, account, APP_ID, data, now)


async def queue_events(core: Core, count: int, seed: int) -> None:
    """XADD `count` events to the outbox streams (each account's partition, or global)."""
    rng, keys, now = random.Random(seed), core.keys, now_ms()
    outboxes = keys.outboxes()
    for base in range(0, count, XADD_PIPELINE):
        async with core.redis.pipeline(transaction=False) as pipe:
            for index in range(base, min(base + XADD_PIPELINE, count)):
                account, payload = realistic_event(seed * 1_000_000 + index, now, rng)
                outbox = outboxes[keys.partition_of(account)] if account else outboxes[-1]
                pipe.xadd(keys.outbox_stream(outbox), {"payload": payload})
            await pipe.execute()


async def receiver_stats(bench: Bench) -> dict[str, Any]:
    """The receiver's counters."""
    async with bench.http.get(f"{bench.receiver_url}/stats") as response:
        return cast(dict[str, Any], orjson.loads(await response.read()))


async def reset_receiver(bench: Bench) -> None:
    """Start each run with a fresh count (the receiver keeps every id it has seen)."""
    async with bench.http.post(f"{bench.receiver_url}/reset") as response:
        if response.status != 200:
            raise BenchError(f"receiver reset answered {response.status}")


def start_worker(bench: Bench, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """Start `tokenbroker worker --only webhooks`; return once it serves /metrics."""
    port, log = free_port(), bench.tmp / f"worker-{name}.log"
    env = {
        **bench.env,
        "TOKENBROKER_WORKER_METRICS_PORT": str(port),
        "TOKENBROKER_WORKER_HEALTH_FILE": str(bench.tmp / f"worker-{name}.health"),
    }
    args = [str(TOKENBROKER), "worker", "--only", "webhooks"]
    process = spawn(bench.stack, args, env, log)
    wait_healthy(f"http://127.0.0.1:{port}/metrics", process, log)
    return process, log


def stop_worker(process: subprocess.Popen[bytes]) -> int | None:
    """SIGTERM the worker and wait (kill after 10 s); return its exit code."""
    return stop_processes([process])[0]


async def set_enabled(core: Core, enabled: bool) -> None:
    """Turn webhook delivery on or off (the worker reads the settings every round)."""
    await core.settings.update({"webhooksEnabled": enabled})


async def wait_seen(
    bench: Bench, process: subprocess.Popen[bytes], log: Path, count: int
) -> dict[str, Any]:
    """Poll the receiver until it has seen `count` distinct ids; return its counters."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while True:
        stats = await receiver_stats(bench)
        if stats["unique"] >= count:
            return stats
        if process.poll() is not None:
            raise BenchError(f"the worker exited ({process.returncode}):\n{tail(log)}")
        if time.monotonic() > deadline:
            raise BenchError(f"{stats['unique']} of {count} events seen in time:\n{tail(log)}")
        await asyncio.sleep(0.02)


async def settle(bench: Bench, log: Path) -> None:
    """Wait until nothing is left pending in a group; fail on any retry or dead letter."""
    core = bench.core
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    deadline = time.monotonic() + 30
    while True:
        pending = 0
        for outbox in core.keys.outboxes():
            stream = core.keys.outbox_stream(outbox)
            if await core.redis.exists(stream):
                pending += int((await core.redis.xpending(stream, GROUP))["pending"])
        if not pending:
            break
        if time.monotonic() > deadline:
            raise BenchError(f"{pending} deliveries still pending:\n{tail(log)}")
        await asyncio.sleep(0.05)
    failed = await deliveries.list("pending", 10) + await deliveries.list("failed", 10)
    if failed:
        raise BenchError(f"deliveries failed: {failed[:2]}\n{tail(log)}")


@contextlib.contextmanager
def py_spy(pid: int, out: Path | None) -> Iterator[None]:
    """Sample `pid` with py-spy (raw collapsed stacks to `out`) while the block runs."""
    if out is None:
        yield
        return
    spy = Path(sys.prefix) / "bin" / "py-spy"
    args = [str(spy), "record", "--format", "raw", "-o", str(out), "--pid", str(pid)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # attached before the clock starts
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
        if process.returncode != 0 or not out.exists():
            raise BenchError(f"py-spy exited {process.returncode}: {err.decode()[-500:]}")


async def drain(bench: Bench, count: int, name: str, profile: Path | None = None) -> Run:
    """Queue `count` events, start a worker with webhooks off, turn them on, time the drain."""
    core = bench.core
    await set_enabled(core, False)
    await reset_receiver(bench)
    bench.runs += 1
    await queue_events(core, count, bench.runs)
    process, log = start_worker(bench, name)
    try:
        with py_spy(process.pid, profile):
            before = (
                cpu_seconds(process.pid),
                cpu_seconds(bench.receiver.pid),
                cpu_seconds(bench.redis_pid),
            )
            enabled_at = time.time()
            await set_enabled(core, True)
            seen = await wait_seen(bench, process, log, count)
            after = (
                cpu_seconds(process.pid),
                cpu_seconds(bench.receiver.pid),
                cpu_seconds(bench.redis_pid),
            )
        await settle(bench, log)
        stats = await receiver_stats(bench)
    finally:
        code = stop_worker(process)
    if code != 0:
        raise BenchError(f"the worker exited with {code}:\n{tail(log)}")
    if stats["bad_signatures"] or stats["missing_id"] or not stats["checked"]:
        raise BenchError(f"the receiver found bad requests: {stats}")
    if stats["unique"] != count:
        raise BenchError(f"the receiver saw {stats['unique']} distinct ids, not {count}")
    return Run(
        events=count,
        requests=int(stats["requests"]),
        wall_s=seen["last_new"] - seen["first_hit"],
        enable_wall_s=seen["last_new"] - enabled_at,
        worker_cpu_s=after[0] - before[0],
        receiver_cpu_s=after[1] - before[1],
        redis_cpu_s=after[2] - before[2],
        checked=int(stats["checked"]),
        connections=int(stats["connections"]),
    )


def top_functions(raw: Path, limit: int = 12) -> list[str]:
    """Top functions of py-spy raw stacks: self samples (leaf) and total samples (inclusive)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(f) for f in stack.split(";") if " (" in f]
        if not frames:
            continue
        samples += int(count)
        own[frames[-1]] += int(count)
        for frame in set(frames):
            total[frame] += int(count)
    rows = [f"  py-spy: {samples:,} samples of the worker; top self time:"]
    rows += [f"    {n / samples:6.1%}  {frame}" for frame, n in own.most_common(limit)]
    rows.append("  top total time (inclusive, below the event loop's own frames):")
    busy = [(f, n) for f, n in total.most_common() if n < LOOP_SHARE * samples][:limit]
    rows += [f"    {n / samples:6.1%}  {frame}" for frame, n in busy]
    return rows


def _function(frame: str) -> str:
    """`name (path:line)` -> `name (file)`: one entry per function, not per line."""
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = Path(path).parts
    short = "/".join(
        parts[parts.index("site-packages") + 1 :] if "site-packages" in parts else parts[-2:]
    )
    return f"{name} ({short})"


async def round_trips(bench: Bench, count: int) -> list[str]:
    """Drain `count` events under MONITOR; the worker's commands (not scripts' own) per event."""
    core = bench.core
    await set_enabled(core, False)
    await reset_receiver(bench)
    bench.runs += 1
    await queue_events(core, count, bench.runs)
    commands: Counter[str] = Counter()
    config = Config.from_env(bench.env)
    side = create_redis(config)
    monitor_client = create_redis(config)
    try:
        await side.ping()
        ours = {str(c["addr"]) for c in await side.client_list()}
        process, log = start_worker(bench, "monitor")
        try:
            async with monitor_client.monitor() as monitor:
                listening = asyncio.create_task(_listen(monitor, ours, commands))
                try:
                    await asyncio.sleep(0.2)  # MONITOR is on before delivery starts
                    await side.hset(core.keys.settings, "webhooksEnabled", "true")
                    await wait_seen(bench, process, log, count)
                    await settle(bench, log)
                finally:
                    listening.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await listening
        finally:
            stop_worker(process)
    finally:
        await side.aclose()
        await monitor_client.aclose()
    setup = sum(n for name, n in commands.items() if name in CONNECTION_SETUP)
    steady = Counter({k: n for k, n in commands.items() if k not in CONNECTION_SETUP})
    parts = ", ".join(f"{name} {n / count:.3f}" for name, n in steady.most_common(8))
    return [
        f"  Redis round trips per event: {steady.total() / count:.3f} ({parts}; {count:,} "
        f"events), plus {setup / count:.3f} for opening connections (the pool grows to the "
        "concurrency once)"
    ]


async def _listen(monitor: Any, ours: set[str], commands: Counter[str]) -> None:
    async for info in monitor.listen():
        if info["client_type"] != "tcp":
            continue  # commands run inside a script are not round trips
        if f"{info['client_address']}:{info['client_port']}" in ours:
            continue
        commands[str(info["command"]).split(" ", 1)[0].upper()] += 1


def verdict(ok: bool) -> str:
    """PASS or MISS."""
    return "PASS" if ok else "MISS"


def report(run: Run) -> list[str]:
    """The result table."""
    head = (
        f"webhook worker: {run.events:,} queued events ({PARTITIONS} partitions + global), "
        f"receiver answering 200 at once, concurrency {CONCURRENCY}, poll {POLL_MS} ms, "
        f"{os.cpu_count()} CPUs shared by all processes"
    )
    return [
        head,
        f"{'':<40}{'measured':>12}{'target':>14}",
        f"{'1 worker events delivered/s (wall)':<40}{run.rate:>12,.0f}"
        f"{'>= ' + format(TARGET_PER_S, ',.0f'):>14}  {verdict(run.rate >= TARGET_PER_S)}",
        f"{'1 worker events/worker CPU-s':<40}{run.per_cpu:>12,.0f}{'':>14}",
        f"  ({run.events:,} events in {run.wall_s:.2f} s from the first receiver hit, "
        f"{run.enable_wall_s:.2f} s from webhooks on; {run.requests:,} requests, "
        f"{run.requests - run.events} duplicates, {run.checked} signatures checked, "
        f"{run.connections} connections to the receiver; CPU-s: "
        f"worker {run.worker_cpu_s:.2f}, receiver {run.receiver_cpu_s:.2f}, "
        f"redis {run.redis_cpu_s:.2f})",
    ]


async def measure(bench: Bench, profile: Path | None) -> str:
    """The throughput run, then (on a miss or when asked) a profiled run and a MONITOR run."""
    core = bench.core
    secret = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(now_ms())
    await core.settings.update({"webhooks": f"{bench.receiver_url}/hooks"})
    await set_receiver_secret(bench, secret)
    print(f"bench: {EVENTS:,} queued events, 1 webhook worker", file=sys.stderr)
    run = await drain(bench, EVENTS, "throughput")
    rows = report(run)
    if profile is None and run.rate < TARGET_PER_S:
        profile = bench.tmp / "webhooks.pyspy.txt"
    if profile is not None:
        print(f"bench: profiling a run of {PROFILE_EVENTS:,} events with py-spy", file=sys.stderr)
        profiled = await drain(bench, PROFILE_EVENTS, "profile", profile)
        rows.append(f"  (profiled run: {profiled.rate:,.0f} events/s under py-spy; {profile})")
        rows += top_functions(profile)
        print(f"bench: counting round trips over {MONITOR_EVENTS:,} events", file=sys.stderr)
        rows += await round_trips(bench, MONITOR_EVENTS)
    return "\n".join(rows)


async def set_receiver_secret(bench: Bench, secret: str) -> None:
    """Tell the receiver the signing secret (over loopback; never on a command line)."""
    async with bench.http.post(f"{bench.receiver_url}/secret", data=secret) as response:
        if response.status != 200:
            raise BenchError(f"receiver secret answered {response.status}")


def run(stack: contextlib.ExitStack, profile: Path | None) -> str:
    """Start Redis and the receiver, then measure; returns the report."""
    tmp, redis, redis_pid = start_redis(stack)
    args = [sys.executable, "-m", "tests.bench.receiver", "--port"]
    receiver_url, receiver = start_server(stack, args, dict(os.environ), tmp / "receiver.log")
    env = base_env(redis.url)

    async def measured(core: Core, http: aiohttp.ClientSession) -> str:
        bench = Bench(stack, tmp, env, core, http, receiver, receiver_url, redis_pid)
        return await measure(bench, profile)

    return run_measure(env, measured)


def main() -> int:
    """Run the benchmark; exit 0 even when the target is missed, non-zero on a setup error."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--profile", type=Path, help="also profile a run with py-spy (raw stacks to PATH)"
    )
    args = parser.parse_args()
    return bench_main(lambda stack: run(stack, args.profile), (*SETUP_ERRORS, aiohttp.ClientError))


if __name__ == "__main__":
    sys.exit(main())
