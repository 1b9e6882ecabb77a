"""The real `tokenbroker` console script: tokens, settings, config listing and errors, web."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock
from service.config import MASK as CONFIG_MASK
from service.config_table import SETTINGS
from service.core import Core
from service.settings import DEFAULTS
from service.store.embedded import RedisProcess, free_port
from service.webhooks.headers import MASK, WebhookHeaders
from tests.conftest import TEST_SECRET
from tests.support.polling import eventually

Client = TestClient[web.Request, web.Application]
TOKENBROKER = Path(sys.executable).parent / "tokenbroker"
SECRET_B64 = base64.b64encode(TEST_SECRET).decode()
OLD_SECRET_B64 = base64.b64encode(bytes([9]) * 32).decode()
RUN_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Result:
    """What one run of the command did."""

    code: int
    stdout: str
    stderr: str

    @property
    def last_line(self) -> str:
        """The last non-empty line of stdout."""
        return self.stdout.strip().splitlines()[-1]


Cli = Callable[..., Awaitable[Result]]


def base_env(redis_url: str | None) -> dict[str, str]:
    """The caller's environment without any tokenbroker variable, plus the test's own."""
    env = {
        k: v for k, v in os.environ.items() if k != "REDIS_URL" and not k.startswith("TOKENBROKER_")
    }
    env["TOKENBROKER_SECRET"] = SECRET_B64
    env["TOKENBROKER_LOG_FORMAT"] = "json"
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return env


async def run(*args: str, env: dict[str, str], cwd: Path) -> Result:
    """Run `tokenbroker ARGS` to completion (killed after RUN_TIMEOUT_S)."""
    proc = await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        *args,
        env=env,
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(RUN_TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@pytest.fixture
def cli(redis_server: RedisProcess, client: Client, tmp_path: Path) -> Cli:
    """Run the command against the test Redis (emptied by the client fixture) from a tmp dir."""

    async def go(*args: str, **env_overrides: str) -> Result:
        env = base_env(redis_server.url)
        env.update(env_overrides)
        return await run(*args, env=env, cwd=tmp_path)

    return go


async def create_token(cli: Cli, *extra: str) -> str:
    """Create a token with the CLI and return it."""
    result = await cli("token", "create", *extra)
    assert result.code == 0, result.stderr
    return result.last_line


def now_ms() -> int:
    """The wall clock in epoch ms."""
    return SystemClock().now_ms()


def bearer(token: str) -> dict[str, str]:
    """Authorization headers for `token`."""
    return {"Authorization": f"Bearer {token}"}


async def eventually_status(client: Client, token: str, status: int, timeout_s: float) -> None:
    """Poll GET /v1/settings with `token` until it answers `status`; fail after `timeout_s`."""
    answered: list[int] = []

    async def answers() -> bool:
        answered.append((await client.get("/v1/settings", headers=bearer(token))).status)
        return answered[-1] == status

    what = f"GET /v1/settings to answer {status}"
    await eventually(answers, timeout_s, what, every_s=0.01, diagnostics=lambda: str(answered))


async def test_token_create_prints_working_token_last(cli: Cli, client: Client) -> None:
    """`token create` prints the token as the last stdout line, and the API accepts it."""
    result = await cli("token", "create", "--scope", "*", "--description", "x")
    assert result.code == 0, result.stderr
    token = result.last_line
    assert len(token) == 64 and set(token) <= set("0123456789abcdef")
    assert token not in result.stderr and "shown only now" in result.stderr
    resp = await client.get("/v1/settings", headers=bearer(token))
    assert resp.status == 200, await resp.text()


async def test_token_create_limits_resources(cli: Cli, core: Core) -> None:
    """`token create --resource outlook` stores a token limited to outlook; a bad one fails."""
    await create_token(cli, "--scope", "oauth-tokens", "--resource", "outlook")
    (made,) = await core.tokens.all()
    assert made.resources == ("outlook",)
    result = await cli("token", "create", "--scope", "oauth-tokens", "--resource", "sharepoint")
    assert result.code != 0 and "resources" in result.stderr


async def test_token_list_shows_ids_never_tokens(cli: Cli, core: Core) -> None:
    """`token list` shows each token's id, scopes and description, but never the token."""
    token = await create_token(cli, "--scope", "api", "--scope", "metrics", "--description", "x")
    other, meta = await core.tokens.create(["oauth-tokens"], "example", None, None, now_ms())
    result = await cli("token", "list")
    assert result.code == 0, result.stderr
    rows = [orjson.loads(line) for line in result.stdout.splitlines() if line.strip()]
    assert len(rows) == 2
    first, second = rows
    assert first["scopes"] == ["api", "metrics"] and first["description"] == "x"
    assert len(first["id"]) == 16
    assert second["id"] == meta.id and second["account"] == "example"
    for secret in (token, other):
        assert secret not in result.stdout and secret not in result.stderr


async def test_token_revoke(cli: Cli, client: Client, core: Core) -> None:
    """`token revoke ID` makes the token answer 401; revoking it again fails by name."""
    token, meta = await core.tokens.create(["*"], None, None, None, now_ms())
    assert (await client.get("/v1/settings", headers=bearer(token))).status == 200
    result = await cli("token", "revoke", meta.id)
    assert result.code == 0, result.stderr
    assert meta.id in result.stdout
    await eventually_status(client, token, 401, timeout_s=1.0)
    again = await cli("token", "revoke", meta.id)
    assert again.code != 0
    assert "TokenNotFound" in again.stderr and meta.id in again.stderr


async def test_token_expires(cli: Cli, client: Client) -> None:
    """A token created with a past --expires is refused (401); a bad time is refused by the CLI."""
    past = await create_token(cli, "--scope", "*", "--expires", "2020-01-01T00:00:00Z")
    resp = await client.get("/v1/settings", headers=bearer(past))
    assert resp.status == 401
    assert "expired" in (await resp.json())["message"]
    bad = await cli("token", "create", "--scope", "*", "--expires", "next tuesday")
    assert bad.code != 0 and bad.stdout == ""
    assert "tokenbroker:" in bad.stderr and "Traceback" not in bad.stderr


async def test_token_create_refuses_unknown_scope(cli: Cli) -> None:
    """An unknown --scope is a usage error (exit 2) that names the allowed scopes."""
    result = await cli("token", "create", "--scope", "admin")
    assert result.code == 2 and result.stdout == ""
    assert "oauth-tokens" in result.stderr


async def test_settings_enable_token_endpoint(cli: Cli, core: Core) -> None:
    """`settings set enableOAuthTokensApi true` enables it; `settings get` shows it."""
    assert (await core.settings.all())["enableOAuthTokensApi"] is False
    result = await cli("settings", "set", "enableOAuthTokensApi", "true")
    assert result.code == 0, result.stderr
    shown = await cli("settings", "get", "enableOAuthTokensApi")
    assert shown.code == 0 and orjson.loads(shown.stdout) == {"enableOAuthTokensApi": True}
    assert (await core.settings.all())["enableOAuthTokensApi"] is True


async def test_settings_set_webhook_headers_sealed(cli: Cli, core: Core) -> None:
    """`settings set webhookHeaders` seals the values and prints them masked; Host is refused."""
    value = '{"Authorization": "Bearer cli-s3cret"}'
    result = await cli("settings", "set", "webhookHeaders", value)
    assert result.code == 0, result.stderr
    assert "cli-s3cret" not in result.stdout and MASK in result.stdout
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    assert await headers.values() == {"Authorization": "Bearer cli-s3cret"}
    shown = await cli("settings", "get", "webhookHeaders")
    assert orjson.loads(shown.stdout) == {"webhookHeaders": {"Authorization": MASK}}
    result = await cli("settings", "set", "webhookHeaders", '{"Host": "evil.example"}')
    assert result.code != 0 and "Traceback" not in result.stderr and "Host" in result.stderr


@pytest.mark.parametrize(
    ("key", "value", "says"),
    [
        ("webhooks", "not-a-url", "webhooks must be an http(s) URL"),
        ("enableOAuthTokensApi", "maybe", "enableOAuthTokensApi must be true or false"),
    ],
)
async def test_settings_set_refuses_bad_value(
    cli: Cli, core: Core, key: str, value: str, says: str
) -> None:
    """A bad value exits non-zero with a message naming the setting, and changes nothing."""
    result = await cli("settings", "set", key, value)
    assert result.code != 0
    assert says in result.stderr and "Traceback" not in result.stderr
    assert await core.settings.all() == DEFAULTS


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", None),
        ("TOKENBROKER_SECRET", "c2hvcnQ="),
        ("TOKENBROKER_PORT", "eighty"),
    ],
)
async def test_web_config_error(
    redis_server: RedisProcess, tmp_path: Path, name: str, value: str | None
) -> None:
    """A missing or malformed variable stops `tokenbroker web` with a message naming it."""
    env = base_env(redis_server.url)
    env.pop(name, None)
    if value is not None:
        env[name] = value
    result = await run("web", env=env, cwd=tmp_path)
    assert result.code != 0
    assert name in result.stderr and "configuration error" in result.stderr
    assert "Traceback" not in result.stderr


async def test_config_lists_every_variable_with_secrets_masked(tmp_path: Path) -> None:
    """`tokenbroker config` prints each variable in effect, the keys and Redis password masked."""
    env = base_env("redis://tokenbroker:pa55-word@127.0.0.1:1/0")
    env["TOKENBROKER_OLD_SECRETS"] = OLD_SECRET_B64
    result = await run("config", env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    lines = result.stdout.splitlines()
    names = [line.split("=", 1)[0] for line in lines if line[0] != " "]
    assert names == [setting.name for setting in SETTINGS]
    assert "TOKENBROKER_LOG_FORMAT=json" in lines
    assert "TOKENBROKER_PORT=8080  (default)" in lines
    assert f"REDIS_URL=redis://tokenbroker:{CONFIG_MASK}@127.0.0.1:1/0" in lines
    shown = result.stdout + result.stderr
    for secret in ("pa55-word", SECRET_B64, OLD_SECRET_B64):
        assert secret not in shown


async def test_config_names_a_bad_variable(tmp_path: Path) -> None:
    """`tokenbroker config` still lists everything, marks the bad variable and exits 2."""
    env = {**base_env("redis://127.0.0.1:1/0"), "TOKENBROKER_LOCK_MS": "99"}
    result = await run("config", env=env, cwd=tmp_path)
    assert result.code == 2
    assert "TOKENBROKER_LOCK_MS=(invalid: TOKENBROKER_LOCK_MS must be between" in result.stdout
    assert "configuration error: TOKENBROKER_LOCK_MS" in result.stderr


async def test_commands_read_var_files(
    redis_server: RedisProcess, client: Client, tmp_path: Path
) -> None:
    """Without REDIS_URL and TOKENBROKER_SECRET the CLI reads var/redis.url and var/secret.key."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "redis.url").write_text(redis_server.url + "\n")
    (var / "secret.key").write_text(SECRET_B64 + "\n")
    env = base_env(None)
    del env["TOKENBROKER_SECRET"]
    result = await run("token", "create", "--scope", "*", env=env, cwd=tmp_path)
    assert result.code == 0, result.stderr
    assert (await client.get("/v1/settings", headers=bearer(result.last_line))).status == 200


async def test_web_serves_health_and_stops_on_sigterm(
    redis_server: RedisProcess, tmp_path: Path
) -> None:
    """`tokenbroker web --port P` answers /health and /ready, exits 0 on SIGTERM, logs JSON."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        str(TOKENBROKER),
        "web",
        "--port",
        str(port),
        env=base_env(redis_server.url),
        cwd=tmp_path,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def healthy() -> bool:
                assert proc.returncode is None, "tokenbroker web exited early"
                try:
                    async with http.get(f"http://127.0.0.1:{port}/health") as resp:
                        if resp.status == 200:
                            assert await resp.json() == {"status": "ok"}
                            return True
                except aiohttp.ClientConnectionError:
                    pass
                return False

            await eventually(healthy, 15, "tokenbroker web to answer /health", every_s=0.05)
            async with http.get(f"http://127.0.0.1:{port}/ready") as resp:
                assert resp.status == 200
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(10):
            _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err
    # the log: JSON lines only, each with the name of its logger
    lines = [orjson.loads(line) for line in err.splitlines()]
    ready = [line for line in lines if line["event"] == "request" and line["path"] == "/ready"]
    assert ready and ready[0]["logger"] == "http" and ready[0]["status"] == 200, lines


async def test_token_create_validates_like_the_api(cli: Cli, core: Core) -> None:
    """An empty or bad --account, an empty --expires or a long --description create nothing."""
    refused = [
        (("--account", ""), "InvalidAccountId"),
        (("--account", "bad id!"), "InvalidAccountId"),
        (("--expires", ""), "expires"),
        (("--expires", "10000-01-01T00:00:00Z"), "expires"),
        (("--description", "d" * 257), "description"),
    ]
    for extra, reason in refused:
        result = await cli("token", "create", "--scope", "oauth-tokens", *extra)
        assert result.code != 0 and result.stdout == "", extra
        assert reason in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert await core.tokens.all() == [], "no token, bound or unbound, was created"
    await create_token(cli, "--scope", "oauth-tokens", "--account", "example")
    (made,) = await core.tokens.all()
    assert made.account == "example"
