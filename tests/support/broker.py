"""A whole broker as processes for one test or bench: Redis, web, workers, and the checks.

The web process and the workers run as `tokenbroker` subprocesses against a private
redis-server (AOF on); an in-process Core on the same Redis imports accounts and reads them
back. The provider is the real test IdP (tests/idp), one per run.
"""

from __future__ import annotations

import asyncio
import base64
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import aiohttp
from redis.asyncio import Redis

from service.accounts import Account, account_from_hash
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core, build_core
from service.settings import OAUTH_TOKENS_API
from service.store.connection import create_redis
from service.store.embedded import RedisProcess, free_port
from service.timing import next_refresh_ms
from tests.support.idp import Idp, minted_write
from tests.support.polling import Condition
from tests.support.processes import (
    TOKENBROKER,
    WorkerProc,
    die_with_parent,
    now_ms,
    start_worker,
    wait_until,
    worker_env,
)

SECRET_B64 = base64.b64encode(bytes(range(32))).decode()
SCOPE = "openid email profile offline_access mail.read"
APP_ID = "idp"
START_TIMEOUT_S = 30.0
# The service's own defaults for the times that matter here (worker_env shortens some).
DEFAULTS = {
    "TOKENBROKER_PROVIDER_TIMEOUT_S": "10",
    "TOKENBROKER_LOCK_MS": "30000",
    "TOKENBROKER_LEASE_MS": "60000",
    "TOKENBROKER_SHUTDOWN_GRACE_S": "15",
    "TOKENBROKER_WORKER_CONCURRENCY": "16",
    "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES": "true",
}


@dataclass(frozen=True)
class Loss:
    """What the provider and the store say about the accounts once everything is quiet."""

    reauth: list[str]  # accounts no longer active (reauth_required)
    unknown: list[str]  # accounts whose stored refresh token the provider no longer accepts
    stale: int  # refresh tokens of the accounts' grants still accepted besides the stored one
    details: tuple[str, ...] = ()  # per lost account: its status, reason and last error
    replayed: int = 0  # refresh requests the provider saw presenting an already used token

    @property
    def lost(self) -> list[str]:
        """Every account that needs its user again, or will at its next refresh."""
        return sorted({*self.reauth, *self.unknown})

    def summary(self) -> str:
        """One line for assertion messages and reports."""
        return (
            f"{len(self.lost)} accounts lost ({len(self.reauth)} reauth_required, "
            f"{len(self.unknown)} with a refresh token the provider no longer accepts), "
            f"{self.stale} stale refresh tokens still active; {self.replayed} replayed refresh "
            f"tokens; {'; '.join(self.details)}"
        )


@dataclass
class Broker:
    """The processes of one broker and an in-process Core on the same Redis."""

    tmp: Path
    server: RedisProcess
    idp: Idp
    env: dict[str, str]
    redis: Redis
    http: aiohttp.ClientSession
    core: Core
    api_token: str
    processes: list[WorkerProc] = field(default_factory=list)
    base_url: str = ""

    def spawn_worker(self, name: str, **env: str) -> WorkerProc:
        """Start `tokenbroker worker` with the broker's environment plus `env`."""
        log = self.tmp / f"{name}.log"
        worker = WorkerProc(name, start_worker([], {**self.env, **env}, self.tmp, log), log)
        self.processes.append(worker)
        return worker

    async def start_web(self, **env: str) -> WorkerProc:
        """Start `tokenbroker web` on a free port and wait until /health answers 200."""
        port, log = free_port(), self.tmp / "web.log"
        process = start_web({**self.env, **env}, port, self.tmp, log)
        web = WorkerProc("web", process, log)
        self.processes.append(web)
        self.base_url = f"http://127.0.0.1:{port}"

        async def healthy() -> bool:
            try:
                async with self.http.get(f"{self.base_url}/health") as response:
                    return response.status == 200
            except aiohttp.ClientError:
                return False

        await self.wait_until(healthy, "the web process healthy", START_TIMEOUT_S, poll_s=0.05)
        return web

    async def wait_until(
        self, condition: Condition, what: str, timeout_s: float, poll_s: float = 0.1
    ) -> None:
        """Poll `condition` until it holds; fail naming `what` (and any dead process)."""
        await wait_until(
            condition,
            what,
            timeout_s,
            poll_s=poll_s,
            workers=self.processes,
            diagnostics=self.diagnostics,
        )

    def diagnostics(self) -> str:
        """Process log tails and the provider's counters, for failure messages."""
        parts = [p.tail() for p in self.processes]
        try:
            parts.append(f"provider: {self.idp.stats()}")
        except (OSError, RuntimeError) as exc:
            parts.append(f"provider unavailable: {exc!r}")
        return "\n".join(parts)

    async def import_accounts(
        self,
        ids: list[str],
        *,
        valid_ms: int,
        lifetime_ms: int,
        spread_ms: int = 0,
        due_in_ms: int | None = None,
    ) -> None:
        """Import accounts with grants minted at the provider.

        Their access tokens stay valid `valid_ms` from now, plus a share of `spread_ms`
        growing with their index; due by the broker's own rule unless `due_in_ms` says.
        """
        slots, config = asyncio.Semaphore(8), self.core.config

        async def one(index: int, account: str) -> None:
            async with slots:
                minted = await asyncio.to_thread(self.idp.mint, f"{account}-user", SCOPE)
            now = now_ms()
            expires = now + valid_ms + spread_ms * index // max(len(ids), 1)
            write = minted_write(APP_ID, account, minted, SCOPE, expires, lifetime_ms)
            due = (
                now + due_in_ms
                if due_in_ms is not None
                else next_refresh_ms(config, now, expires, lifetime_ms)
            )
            await self.core.accounts.save(account, write, due, now, {"user": account})

        await asyncio.gather(*(one(index, account) for index, account in enumerate(ids)))

    async def accounts(self, ids: list[str]) -> dict[str, Account]:
        """The stored accounts, read in one pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for account in ids:
                pipe.hgetall(self.core.keys.account(account))
            rows = cast(list[dict[str, str]], await pipe.execute())
        rows = await self.core.accounts.scope_sets.expand(rows)
        found = {}
        for account, row in zip(ids, rows, strict=True):
            parsed = account_from_hash(row)
            assert parsed is not None, f"account {account} vanished"
            assert parsed.id == account, f"the read of {account} answered {parsed.id}"
            found[account] = parsed
        return found

    async def quiet(self, timeout_s: float) -> None:
        """Wait until the provider handles no refresh, then stop every process (SIGTERM)."""
        await self.wait_until(
            lambda: self.idp.stats()["refresh_in_flight"] == 0, "the provider idle", timeout_s
        )
        for process in self.processes:
            if process.process.poll() is None:
                await process.stop(timeout_s=30)

    async def loss(self, ids: list[str]) -> Loss:
        """Check every account against the provider; call once all processes have stopped."""
        assert self.idp.stats()["refresh_in_flight"] == 0, "a refresh is still being answered"
        accounts = await self.accounts(ids)
        stored = [self.core.accounts.refresh_token(accounts[a]) for a in ids]
        states = await asyncio.to_thread(self.idp.active_many, stored)
        reauth = [a for a in ids if accounts[a].status != "active"]
        unknown = [a for a, state in zip(ids, states, strict=True) if not state.active]
        stale = sum(s.active_in_grant - (1 if s.active else 0) for s in states)
        details = tuple(
            f"{a}: {accounts[a].status} {accounts[a].reason} {accounts[a].last_error}"
            for a in sorted({*reauth, *unknown})
        )
        return Loss(reauth, unknown, stale, details, int(self.idp.stats()["refresh_replayed"]))


def start_web(env: dict[str, str], port: int, cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start `tokenbroker web --port PORT` with `env`, its stdout and stderr to `log`."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [str(TOKENBROKER), "web", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            preexec_fn=die_with_parent,
        )


@asynccontextmanager
async def running_broker(
    tmp: Path, idp: Idp, *, redis_url: str | None = None, **env: str
) -> AsyncIterator[Broker]:
    """A private Redis, an app at `idp`, the token API on, an API token; processes stopped after.

    `redis_url` names a Redis of the caller's (a cluster, say) instead of a private one;
    `env` overrides the processes' environment (the service's defaults otherwise).
    """
    server = RedisProcess(tmp / "redis")
    if redis_url is None:
        await asyncio.to_thread(server.start)
    environ = {**worker_env(redis_url or server.url, SECRET_B64, tmp), **DEFAULTS, **env}
    config = Config.from_env(environ)
    redis = create_redis(config, retries=3)
    http = aiohttp.ClientSession()
    broker: Broker | None = None
    try:
        core = build_core(config, redis, http, SystemClock())
        await core.apps.create(oidc_app(idp), iso(now_ms()))
        await core.settings.update({OAUTH_TOKENS_API: True})
        token, _ = await core.tokens.create(["*"], None, "load", None, now_ms())
        broker = Broker(tmp, server, idp, environ, redis, http, core, token)
        yield broker
    finally:
        for process in broker.processes if broker else []:
            if process.process.poll() is None:
                process.process.kill()
                await asyncio.to_thread(process.process.wait)
        await http.close()
        await redis.aclose()
        if redis_url is None:
            await asyncio.to_thread(server.stop)


def oidc_app(idp: Idp) -> dict[str, object]:
    """The app at the test provider."""
    return {
        "id": APP_ID,
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "additionalScopes": ["mail.read"],
    }


def kill_redis(server: RedisProcess) -> None:
    """SIGKILL the redis-server (what it wrote to its AOF survives; nothing else)."""
    assert server.process is not None
    server.process.kill()
    server.process.wait()
    server.process = None
