"""`tokenbroker admin set-password` and the admin password `tokenbroker dev` prints once."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.core import Core
from service.store.embedded import RedisProcess, free_port
from tests.support.admin import login
from tests.test_cli import TOKENBROKER, base_env

Client = TestClient[web.Request, web.Application]
MARK = "generated admin password (shown only now): "


async def set_password(redis_url: str, cwd: Path, stdin: bytes) -> tuple[int, str]:
    """Run `tokenbroker admin set-password --password-stdin` with `stdin`."""
    proc = await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        "admin",
        "set-password",
        "--password-stdin",
        env=base_env(redis_url),
        cwd=cwd,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(20):
        out, _ = await proc.communicate(stdin)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_set_password_from_stdin(
    redis_server: RedisProcess, client: Client, core: Core, redis: Redis, tmp_path: Path
) -> None:
    """The password read from stdin opens the pages; a short one is refused and not stored."""
    code, out = await set_password(redis_server.url, tmp_path, b"short\n")
    assert code != 0 and "at least 8" in out
    assert not await redis.exists(core.keys.admin)
    code, out = await set_password(redis_server.url, tmp_path, b"a long enough password\n")
    assert code == 0, out
    assert "a long enough password" not in out
    assert (await login(client, "a long enough password")).status == 303


async def test_dev_prints_url_and_password_once(
    redis_server: RedisProcess, client: Client, tmp_path: Path
) -> None:
    """`tokenbroker dev` prints the settings URL and a new password on its terminal, not in logs."""
    port = free_port()
    env = {**base_env(redis_server.url), "TOKENBROKER_PORT": str(port)}
    proc = await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        "dev",
        env=env,
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 20
        while not any(MARK in line for line in lines):
            assert time.monotonic() < deadline, lines
            async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                lines.append((await proc.stdout.readline()).decode())
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            rest, _ = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines += rest.decode().splitlines()
    assert any(f"http://127.0.0.1:{port}/admin/" in line for line in lines), lines
    (shown,) = [line for line in lines if MARK in line]
    password = shown.split(MARK)[1].strip()
    assert sum(password in line for line in lines) == 1  # printed once, never logged
    assert (await login(client, password)).status == 303
