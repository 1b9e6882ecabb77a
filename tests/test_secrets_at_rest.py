"""No secret in plaintext at rest, in a log line, or in any answer of the API.

Secrets: OAuth2 access and refresh tokens (imported and rotated), client secrets (old and
new), API tokens and a custom webhook header's value. The flow imports accounts, refreshes
them (rotation), fails one refresh for good, and then scans every key of Redis, what was
appended to its AOF, what was published, the captured log and every response body.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import structlog
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.clock import SystemClock, iso
from service.core import Core
from service.store.embedded import RedisProcess
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.logs import Lines, logged_lines

Client = TestClient[web.Request, web.Application]
PAST = "2020-01-01T00:00:00.000Z"
SCOPES = "openid email profile offline_access mail.read"


class Secrets:
    """Every secret seen during the flow, by kind, and where each may legitimately appear."""

    def __init__(self) -> None:
        self.access: set[str] = set()
        self.refresh: set[str] = set()
        self.client: set[str] = set()
        self.api: set[str] = set()
        self.webhook: set[str] = set()

    def all(self) -> set[str]:
        """Every secret."""
        return self.access | self.refresh | self.client | self.api | self.webhook

    def not_access(self) -> set[str]:
        """Every secret but the access tokens (which the token endpoint serves)."""
        return self.refresh | self.client | self.api | self.webhook

    def forms(self, values: set[str]) -> dict[str, bytes]:
        """Each secret as bytes, and also base64-encoded (encoded is not encrypted)."""
        found: dict[str, bytes] = {}
        for value in values:
            raw = value.encode()
            found[value] = raw
            found[f"b64({value})"] = base64.b64encode(raw)
            found[f"b64url({value})"] = base64.urlsafe_b64encode(raw).rstrip(b"=")
        return found

    def assert_absent(
        self, haystack: bytes | str, where: str, values: set[str] | None = None
    ) -> None:
        """Assert that no form of any secret (of `values`, default all) occurs in `haystack`."""
        data = haystack.encode() if isinstance(haystack, str) else haystack
        leaked = [name for name, form in self.forms(values or self.all()).items() if form in data]
        assert not leaked, f"secret(s) found in {where}: {leaked}"


class Recorder:
    """Calls the API and keeps every response body for the final check."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.bodies: list[tuple[str, str]] = []  # (what, text) of every non-token answer
        self.token_bodies: list[tuple[str, str]] = []  # answers of the token endpoint

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[ClientResponse, Any]:
        """Send one request; return the response and its JSON body."""
        resp = await self.client.request(method, path, **kwargs)
        text = await resp.text()
        where = f"{method} {path} -> {resp.status}"
        target = self.token_bodies if path.split("?")[0].endswith("/oauth-token") else self.bodies
        target.append((where, text + "\n" + str(dict(resp.headers))))
        return resp, await resp.json()


@pytest.fixture
def captured_log() -> Iterator[Lines]:
    """Our and the stdlib's log lines, rendered as JSON into a buffer for this test."""
    with logged_lines() as lines:
        yield lines


@pytest.fixture
async def published(redis: Redis) -> AsyncIterator[list[Any]]:
    """Every message published on the test Redis during the test (all channels)."""
    messages: list[Any] = []
    stop = asyncio.Event()
    async with redis.pubsub() as pubsub:
        await pubsub.psubscribe("*")

        async def collect() -> None:
            while not stop.is_set():
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.05)
                if message is not None:
                    messages.append(message)

        task = asyncio.create_task(collect())
        yield messages
        stop.set()  # no cancel: redis-py may swallow a cancellation and never return
        await asyncio.wait_for(task, timeout=5)


def aof_sizes(data_dir: Path) -> dict[Path, int]:
    """Size of every file of the Redis data dir (the AOF parts) right now."""
    return {path: path.stat().st_size for path in data_dir.rglob("*") if path.is_file()}


def aof_appended(data_dir: Path, before: dict[Path, int]) -> bytes:
    """The bytes appended to the data dir's files since `before` (new files in full)."""
    chunks = []
    for path in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        with path.open("rb") as handle:
            handle.seek(before.get(path, 0))
            chunks.append(handle.read())
    return b"\n".join(chunks)


def _bytes(value: object) -> bytes:
    assert isinstance(value, bytes), value
    return value


async def dump_redis(url: str) -> tuple[bytes, set[str]]:
    """Every key name and every value of every key (all types), as bytes; and the key types."""
    raw = Redis.from_url(url)  # no decoding: values are read as the bytes Redis holds
    chunks: list[bytes] = []
    kinds: set[str] = set()
    try:
        async for key in raw.scan_iter(count=1000):
            chunks.append(_bytes(key))
            kind = _bytes(await raw.type(key)).decode()
            kinds.add(kind)
            values: list[object]
            if kind == "string":
                values = [await raw.get(key)]
            elif kind == "hash":
                values = [item for pair in (await raw.hgetall(key)).items() for item in pair]
            elif kind == "list":
                values = list(await raw.lrange(key, 0, -1))
            elif kind == "set":
                values = list(await raw.smembers(key))
            elif kind == "zset":
                values = list(await raw.zrange(key, 0, -1))
            elif kind == "stream":
                values = []
                entries = cast(list[tuple[bytes, dict[bytes, bytes]]], await raw.xrange(key))
                for entry_id, fields in entries:
                    values.append(entry_id)
                    values += [item for pair in fields.items() for item in pair]
            else:
                raise AssertionError(f"key {key!r} has a type this scan does not read: {kind}")
            chunks += [_bytes(value) for value in values]
    finally:
        await raw.aclose()
    return b"\n".join(chunks), kinds


async def test_no_secret_at_rest_in_logs_or_answers(
    captured_log: Lines,
    published: list[Any],
    redis_server: RedisProcess,
    client: Client,
    core: Core,
    idp: Idp,
    oidc_app: str,
) -> None:
    """After imports, refreshes, rotation and failures, no secret is in Redis, logs or answers."""
    aof_before = aof_sizes(redis_server.data_dir)
    found = Secrets()
    api = Recorder(client)

    admin_token = await make_token(core, "*")
    token_token = await make_token(core, "oauth-tokens")
    bound_token = await make_token(core, "api", account="alpha")
    found.api |= {admin_token, token_token, bound_token}
    found.client.add(idp.client_secret)
    admin = {"Authorization": f"Bearer {admin_token}"}
    reader = {"Authorization": f"Bearer {token_token}"}

    # an app created and re-keyed through the API
    first_secret, second_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    found.client |= {first_secret, second_secret}
    app_body = {
        "id": "api-app",
        "provider": "oidc",
        "clientId": "api-client",
        "clientSecret": first_secret,
        "issuer": idp.issuer,
    }
    resp, _ = await api.call("POST", "/v1/oauth2", json=app_body, headers=admin)
    assert resp.status == 200
    resp, _ = await api.call(
        "PUT", "/v1/oauth2/api-app", json={"clientSecret": second_secret}, headers=admin
    )
    assert resp.status == 200
    assert core.apps.client_secret(await core.apps.require("api-app")) == second_secret

    # events are queued (and scanned) only while webhooks are on; a header carries a secret
    hook_secret = secrets.token_urlsafe(24)
    found.webhook.add(hook_secret)
    hooks = {
        "webhooks": "https://hooks.example.com/x",
        "webhooksEnabled": True,
        "webhookHeaders": {"Authorization": f"Bearer {hook_secret}"},
    }
    resp, _ = await api.call("PUT", "/v1/settings", json=hooks, headers=admin)
    assert resp.status == 200

    # three accounts: alpha (valid token), beta (expired), gamma (will be revoked for good)
    minted: dict[str, dict[str, Any]] = {}
    for account, expires in (("alpha", None), ("beta", PAST), ("gamma", PAST)):
        grant = idp.mint(f"{account}-user", SCOPES)
        minted[account] = grant
        found.access.add(str(grant["access_token"]))
        found.refresh.add(str(grant["refresh_token"]))
        body = {
            "account": account,
            "oauth2": {
                "provider": oidc_app,
                "auth": {"user": f"{account}@example.test"},
                "refreshToken": grant["refresh_token"],
                "accessToken": grant["access_token"],
                "expires": expires or iso(SystemClock().now_ms() + 3_600_000),
            },
        }
        resp, _ = await api.call("POST", "/v1/account", json=body, headers=admin)
        assert resp.status == 200
    await core.settings.update({"enableOAuthTokensApi": True})

    # alpha: a forced refresh rotates both tokens; the token endpoint serves the new one
    resp, body = await api.call("POST", "/v1/account/alpha/refresh", headers=admin)
    assert resp.status == 200, body
    resp, body = await api.call("GET", "/v1/account/alpha/oauth-token", headers=reader)
    assert resp.status == 200 and body["accessToken"] != minted["alpha"]["access_token"], body
    found.access.add(body["accessToken"])

    # beta: refreshed on demand by the token endpoint (expired)
    resp, body = await api.call("GET", "/v1/account/beta/oauth-token", headers=reader)
    assert resp.status == 200 and body["cached"] is False, body
    found.access.add(body["accessToken"])

    for account in ("alpha", "beta"):
        stored = core.accounts.refresh_token(await core.accounts.require(account))
        assert stored != minted[account]["refresh_token"]  # rotated
        found.refresh.add(stored)

    # gamma: the provider refuses the refresh token for good
    idp.fault("error", error="invalid_grant", error_description="grant revoked by the user")
    resp, body = await api.call("GET", "/v1/account/gamma/oauth-token", headers=reader)
    assert resp.status == 409 and body["code"] == "ReauthRequired", body

    # reads of everything, and a handful of errors
    for path in (
        "/v1/account/alpha",
        "/v1/account/beta",
        "/v1/account/gamma",
        "/v1/accounts",
        "/v1/accounts?status=reauth_required",
        f"/v1/oauth2/{oidc_app}",
        "/v1/oauth2/api-app",
        "/v1/oauth2",
        "/v1/settings",
    ):
        resp, body = await api.call("GET", path, headers=admin)
        assert resp.status == 200, body
    resp, _ = await api.call(
        "GET", "/v1/account/alpha", headers={"Authorization": f"Bearer {bound_token}"}
    )
    assert resp.status == 200
    # EmailEngine's ?access_token= works, and the token must not reach any log line (scanned below)
    resp, _ = await api.call("GET", f"/v1/accounts?access_token={admin_token}", headers={})
    assert resp.status == 200
    errors = [
        ("GET", "/v1/account/nobody", admin, None, 404),
        ("GET", "/v1/accounts", {"Authorization": f"Bearer {secrets.token_hex(32)}"}, None, 401),
        ("GET", "/v1/accounts", {"Authorization": f"Basic {admin_token}"}, None, 401),
        ("GET", f"/v1/accounts?access_token={secrets.token_hex(32)}", {}, None, 401),
        ("GET", "/v1/accounts", reader, None, 403),
        ("GET", "/v1/account/beta", {"Authorization": f"Bearer {bound_token}"}, None, 403),
        ("GET", "/v1/account/gamma/oauth-token", reader, None, 409),
        ("POST", "/v1/account/gamma/refresh", admin, None, 409),
        (
            "POST",
            "/v1/account",
            admin,
            {
                "account": "delta",
                "oauth2": {
                    "provider": oidc_app,
                    "auth": {"user": "d"},
                    "refreshToken": 5,
                    "accessToken": next(iter(found.access)),
                },
            },
            400,
        ),
        (
            "POST",
            "/v1/oauth2",
            admin,
            {**app_body, "id": "bad-app", "clientSecret": first_secret, "issuer": "nope"},
            400,
        ),
        (
            "PUT",
            f"/v1/oauth2/{oidc_app}",
            admin,
            {"clientSecret": second_secret, "tokenUrl": "http://[::1"},
            None,
        ),
        (
            "POST",
            "/v1/account",
            admin,
            {
                "account": "alpha",
                "oauth2": {"provider": oidc_app, "refresh_token": next(iter(found.refresh))},
            },
            400,
        ),
    ]
    for method, path, headers, json_body, status in errors:
        resp, body = await api.call(method, path, headers=headers, json=json_body)
        assert resp.status >= 400 and "code" in body, (method, path, body)
        assert status is None or resp.status == status, (method, path, body)
    # a credential that is not ours is a secret too: it must not be logged either
    for _, _, headers, _, _ in errors:
        found.api.add(headers.get("Authorization", " ").split(" ", 1)[1] or admin_token)

    # -- the checks ------------------------------------------------------------------------
    assert len(found.access) == 5 and len(found.refresh) == 5, found.__dict__

    await core.audit.flush()  # the audit trail's buffered token answers, into the scan
    dump, kinds = await dump_redis(redis_server.url)
    markers = (b"acct:alpha", b"acct:gamma", b"accountAdded", b"authenticationError")
    for marker in (*markers, b"token.issued", b"app.update", b"settings.update"):
        assert marker in dump, f"the scan did not see {marker!r}"
    assert {"hash", "zset", "stream", "set"} <= kinds, kinds
    found.assert_absent(dump, "Redis (a key or a value)")

    appended = aof_appended(redis_server.data_dir, aof_before)
    found.assert_absent(appended, "the AOF written during the test")

    assert published, "nothing was published: the capture does not work"
    found.assert_absent(repr(published), "a published message")

    text = captured_log.text
    paths = {line["path"] for line in captured_log.events("request")}
    assert "/v1/account/alpha/oauth-token" in paths, text[:2000]
    assert captured_log.events("refreshed") and captured_log.events("refresh_failed"), text[:2000]
    assert captured_log.events("audit"), text[:2000]
    found.assert_absent(text, "the log")

    for where, body_text in api.bodies:
        found.assert_absent(body_text, where)
    for where, body_text in api.token_bodies:
        found.assert_absent(body_text, where, found.not_access())


def _fail_holding(secret: str) -> None:
    refresh_token = secret  # a local that a traceback renderer with locals would print
    raise ValueError(f"refresh failed ({len(refresh_token)} characters)")


@pytest.mark.parametrize("log_format", ["json", "console"])
def test_logged_exception_shows_no_locals(log_format: str) -> None:
    """An exception logged with log.exception() does not print local variables (secrets)."""
    secret = secrets.token_urlsafe(32)
    with logged_lines(log_format) as lines:
        try:
            _fail_holding(secret)
        except ValueError:
            structlog.get_logger("test").exception("unhandled_error", path="/v1/x")
            logging.getLogger("aiohttp.server").error("Error handling request", exc_info=True)
    text = lines.text
    assert "unhandled_error" in text and "Error handling request" in text, text
    assert secret not in text, f"a secret local variable was logged:\n{text}"
