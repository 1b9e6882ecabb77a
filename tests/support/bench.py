"""Scaffolding shared by the worker benches: a private Redis, the in-process Core, main()."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import FrameType

import aiohttp
from redis.exceptions import RedisError

from service.clock import SystemClock
from service.config import Config, ConfigError
from service.core import Core, build_core
from service.store.connection import create_redis
from service.store.embedded import RedisProcess
from tests.bench.token_endpoint import BenchError

Measure = Callable[[Core, aiohttp.ClientSession], Awaitable[str]]
SETUP_ERRORS: tuple[type[BaseException], ...] = (
    RuntimeError,
    OSError,
    subprocess.SubprocessError,
    ConfigError,
    RedisError,
)


def start_redis(stack: contextlib.ExitStack) -> tuple[Path, RedisProcess, int]:
    """A temporary directory and a redis-server in it (stopped with `stack`); its pid."""
    tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tokenbroker-bench-")))
    redis = RedisProcess(tmp / "redis")
    redis.start()
    stack.callback(redis.stop)
    if redis.process is None:
        raise BenchError("redis-server did not start")
    return tmp, redis, redis.process.pid


async def with_core(env: dict[str, str], measure: Measure) -> str:
    """Build the service's Core in this process (same Config as the workers) and measure."""
    task = asyncio.current_task()
    if task is not None:  # SIGTERM cancels the run like Ctrl-C does: every `finally` runs
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    config = Config.from_env(env)
    redis = create_redis(config)
    try:
        async with aiohttp.ClientSession() as http:
            core = build_core(config, redis, http, SystemClock())
            return await measure(core, http)
    finally:
        await redis.aclose()


def run_measure(env: dict[str, str], measure: Measure) -> str:
    """Run `with_core` in a fresh event loop; SIGTERM exits again once the loop is closed."""
    try:
        return asyncio.run(with_core(env, measure))
    finally:
        signal.signal(signal.SIGTERM, _terminated)  # the loop reset it on closing


def _terminated(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def bench_main(
    run: Callable[[contextlib.ExitStack], str],
    errors: tuple[type[BaseException], ...] = SETUP_ERRORS,
) -> int:
    """Run a bench and print its report; 130 when interrupted, 1 on any of `errors`."""
    signal.signal(signal.SIGTERM, _terminated)
    try:
        with contextlib.ExitStack() as stack:
            table = run(stack)
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted", file=sys.stderr)
        return 130
    except errors as exc:
        print(f"bench: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(table)
    return 0


def accounts_main(
    doc: str | None, default: int, run: Callable[[contextlib.ExitStack, int], str]
) -> int:
    """main() of a bench sized by `--accounts N` (at least 1,000; `default` when not given)."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--accounts", type=int, default=default)
    args = parser.parse_args()
    if args.accounts < 1000:
        raise BenchError("use at least 1,000 accounts")
    return bench_main(lambda stack: run(stack, args.accounts))
