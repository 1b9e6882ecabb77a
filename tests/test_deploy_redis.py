"""compose's Redis on deploy/redis.conf: nothing runs unauthenticated; tokenbroker's user does."""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, NoPermissionError, RedisError

from service.store.embedded import _die_with_parent, free_port, server_binary
from tests.support.deploy_files import DEPLOY, compose, deploy_commands
from tests.support.polling import eventually
from tests.test_cli import run
from tests.test_deploy import image_env, start, stop

COMPOSE_CONF = "/usr/local/etc/redis/redis.conf"  # where compose mounts redis.conf


@dataclass(frozen=True)
class AclRedis:
    """The running Redis: its port, the tokenbroker user's password, its REDIS_URL."""

    port: int
    password: str
    url: str


def search_path() -> str:
    """PATH with the directory of the redis-server (and redis-cli) the tests use first."""
    return f"{Path(server_binary()).parent}{os.pathsep}{os.environ['PATH']}"


def as_compose_gives(value: str, password: str) -> str:
    """A compose.yaml string as compose hands it on: ${REDIS_PASSWORD…} filled in, $$ → $."""
    return re.sub(r"\$\{REDIS_PASSWORD(?::\?[^}]*)?\}", password, value).replace("$$", "$")


async def answers(redis: Redis) -> bool:
    """True once the Redis answers PING."""
    try:
        return bool(await redis.ping())
    except RedisError:
        return False


@pytest.fixture
async def acl_redis(tmp_path: Path) -> AsyncIterator[AclRedis]:
    """Compose's redis command and environment, on redis.conf with dir/port/bind for a test."""
    port, password = free_port(), secrets.token_hex(16)
    conf, text = tmp_path / "redis.conf", (DEPLOY / "redis.conf").read_text()
    for name, value in (("dir", tmp_path), ("port", port), ("bind", "127.0.0.1")):
        text = re.sub(rf"(?m)^{name} .*$", f"{name} {value}", text)
    conf.write_text(text)
    service = compose()["services"]["redis"]
    argv = [
        as_compose_gives(a, password).replace(COMPOSE_CONF, str(conf)) for a in service["command"]
    ]
    env = {k: as_compose_gives(v, password) for k, v in service["environment"].items()}
    entrypoint = tmp_path / "bin" / "docker-entrypoint.sh"  # the image's, minus dropping root
    entrypoint.parent.mkdir()
    entrypoint.write_text('#!/bin/sh\nexec "$@"\n')
    entrypoint.chmod(0o755)
    env["PATH"] = os.pathsep.join([str(entrypoint.parent), search_path()])
    log = (tmp_path / "redis.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=log, stderr=log, preexec_fn=_die_with_parent
    )
    tokenbroker_url = compose()["x-tokenbroker"]["environment"]["REDIS_URL"]
    url = as_compose_gives(tokenbroker_url, password).replace("@redis:6379", f"@127.0.0.1:{port}")
    client = Redis.from_url(url)
    try:
        await eventually(
            lambda: answers(client), 10, "the ACL Redis to answer its user", every_s=0.05
        )
        yield AclRedis(port, password, url)
    finally:
        await client.aclose()
        proc.terminate()
        async with asyncio.timeout(10):
            await proc.wait()
        log.close()


async def test_unauthenticated_clients_can_do_nothing(acl_redis: AclRedis) -> None:
    """Without the tokenbroker user's password no command runs, not even as `default`."""
    once = Retry(NoBackoff(), 0)  # a refused login is final: no reconnecting
    strangers = [
        Redis(port=acl_redis.port, retry=once),
        Redis(port=acl_redis.port, username="default", password="", retry=once),
        Redis(port=acl_redis.port, username="tokenbroker", password="guess", retry=once),
    ]
    for stranger in strangers:
        for command in (("PING",), ("HSET", "tb:{g}:apitoken:x", "scopes", '["*"]'), ("KEYS", "*")):
            with pytest.raises(AuthenticationError):
                await stranger.execute_command(*command)  # type: ignore[no-untyped-call]
        await stranger.aclose()


async def test_tokenbroker_user_works_but_cannot_administer(acl_redis: AclRedis) -> None:
    """REDIS_URL as compose builds it reads and writes; server administration is refused."""
    redis = Redis.from_url(acl_redis.url, decode_responses=True)
    await redis.hset("tb:{g}:probe", "a", "1")
    assert await redis.hgetall("tb:{g}:probe") == {"a": "1"}
    for command in (
        ("CONFIG", "SET", "dir", "."),
        ("FLUSHALL",),
        ("ACL", "SETUSER", "default", "on", "nopass", "+@all"),
        ("KEYS", "*"),
        ("REPLICAOF", "NO", "ONE"),
    ):
        with pytest.raises(NoPermissionError):
            await redis.execute_command(*command)  # type: ignore[no-untyped-call]
    await redis.aclose()


async def test_compose_healthcheck_logs_in(acl_redis: AclRedis, tmp_path: Path) -> None:
    """The Redis healthcheck passes with the password of the environment, fails without it."""
    script = compose()["services"]["redis"]["healthcheck"]["test"][1]
    script = as_compose_gives(script, "").replace("redis-cli", f"redis-cli -p {acl_redis.port}")
    env = {"PATH": search_path()}
    for password, code in ((acl_redis.password, 0), ("wrong", 1)):
        done = await asyncio.create_subprocess_exec(
            "sh", "-c", script, env={**env, "REDIS_PASSWORD": password}
        )
        assert await done.wait() == code, password


@pytest.mark.timeout(60)
async def test_service_runs_as_the_tokenbroker_user(acl_redis: AclRedis, tmp_path: Path) -> None:
    """CLI, web and worker work under the ACL user: token, app, ready, worker check, export."""
    env = image_env(acl_redis.url, tmp_path)
    created = await run("token", "create", "--scope", "*", env=env, cwd=tmp_path)
    assert created.code == 0, created.stderr
    auth = {"Authorization": f"Bearer {created.stdout.strip().splitlines()[-1]}"}
    commands = deploy_commands()
    web = await start(commands["Dockerfile CMD"], env, tmp_path)
    worker = await start(commands["compose worker"], env, tmp_path)
    base = f"http://127.0.0.1:{env['TOKENBROKER_PORT']}"
    try:
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    async with http.get(f"{base}/ready") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 20, "/ready under the ACL user", every_s=0.05)
            app = {"id": "gmail", "provider": "gmail", "clientId": "c", "clientSecret": "s"}
            async with http.post(f"{base}/v1/oauth2", json=app, headers=auth) as resp:
                assert resp.status == 200, await resp.text()

        async def worker_alive() -> bool:
            check = await run(*commands["compose worker healthcheck"][1:], env=env, cwd=tmp_path)
            return check.code == 0

        await eventually(worker_alive, 20, "`worker --check` under the ACL user", every_s=0.05)
        exported = await run("export", str(tmp_path / "backup.jsonl"), env=env, cwd=tmp_path)
        assert exported.code == 0 and "exported 1 apps" in exported.stdout, exported.stderr
    finally:
        for proc in (web, worker):
            code, err = await stop(proc)
            assert code == 0 and b"NOPERM" not in err and b"Traceback" not in err, err.decode()


def test_redis_conf_documents_the_user_compose_declares() -> None:
    """The ACL line compose hands Redis is the one redis.conf and deploy/README.md describe."""
    script = compose()["services"]["redis"]["command"][-1]
    (line,) = [row for row in script.splitlines() if row.startswith("user tokenbroker ")]
    assert (
        f"#   {line.replace('$$REDIS_PASSWORD', 'REDIS_PASSWORD')}\n"
        in (DEPLOY / "redis.conf").read_text()
    )
    assert line.replace("$$REDIS_PASSWORD", "PASSWORD") in (DEPLOY / "README.md").read_text()
