"""`tokenbroker web --processes N`: N processes on one port, each cache kept correct."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import aiohttp
import pytest

from service.clock import SystemClock
from service.core import Core
from service.ops.web_command import process_count
from service.store.embedded import RedisProcess, free_port
from tests.support.polling import eventually
from tests.test_cli import TOKENBROKER, base_env

REQUESTS = 40  # over fresh connections: the kernel spreads them over both processes


def children(pid: int) -> list[int]:
    """The child processes of `pid` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


async def statuses(port: int, token: str) -> list[int]:
    """GET /v1/accounts REQUESTS times, each over a new connection; the statuses."""
    connector = aiohttp.TCPConnector(force_close=True)
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession(connector=connector) as http:

        async def one() -> int:
            async with http.get(f"http://127.0.0.1:{port}/v1/accounts", headers=headers) as r:
                return r.status

        return list(await asyncio.gather(*(one() for _ in range(REQUESTS))))


def test_process_count() -> None:
    """A number from 1 to 256, or auto (at least one)."""
    assert process_count("3") == 3 and process_count("auto") >= 1
    for bad in ("0", "-1", "257", "many"):
        with pytest.raises(ValueError, match="--processes"):
            process_count(bad)


async def test_two_processes_share_a_port_and_forget_a_revoked_token(
    redis_server: RedisProcess, core: Core, tmp_path: Path
) -> None:
    """Both processes serve one port; a revoked token is refused by every one within 1 s."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        "web",
        "--processes",
        "2",
        "--port",
        str(port),
        env=base_env(redis_server.url),
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        token, record = await core.tokens.create(["api"], None, "t", None, SystemClock().now_ms())

        async def serving() -> bool:
            assert proc.returncode is None, "tokenbroker web exited early"
            try:
                return set(await statuses(port, token)) == {200}
            except aiohttp.ClientConnectionError:
                return False

        await eventually(serving, 20, "both processes to serve the token", every_s=0.1)
        assert len(children(proc.pid)) == 2
        await core.tokens.revoke(record.id)
        took = await eventually(
            lambda: _all_refused(port, token), 5, "every process to refuse the token"
        )
        assert took < 1.5, f"a process served a revoked token for {took:.2f} s"
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def _all_refused(port: int, token: str) -> bool:
    return set(await statuses(port, token)) == {401}
