"""Two web processes on one Redis: a change made through one reaches the other within 1 s."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.apitokens import ApiTokenStore
from service.clock import SystemClock
from service.config import Config
from service.core import Core
from service.crypto.cipher import sha256_hex
from service.settings import SettingsStore
from service.store.embedded import RedisProcess
from service.store.keys import Keys
from service.web.appkeys import CORE
from tests.support.polling import eventually

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
Importer = Callable[..., Awaitable[dict[str, Any]]]
TOKEN_URL = "/v1/account/example/oauth-token"
WITHIN_S = 1.0  # the design's promise: every web process sees a change within one second


@dataclasses.dataclass(frozen=True)
class Pair:
    """Two warmed web apps ('processes') and the API token both have cached."""

    a: Client
    b: Client
    token: str
    token_id: str
    access_token: str

    @property
    def headers(self) -> dict[str, str]:
        """Authorization headers with the cached token."""
        return {"Authorization": f"Bearer {self.token}"}


def cache_of(client: Client) -> Any:
    """The app's LocalCache."""
    return client.app[CORE].cache


async def within_one_second(
    client: Client, headers: dict[str, str], check: Callable[[int, dict[str, Any]], bool]
) -> None:
    """Fetch the token until `check(status, body)` holds; fail if that takes over 1 s."""
    seen: list[tuple[int, dict[str, Any]]] = []

    async def answered() -> bool:
        resp = await client.get(TOKEN_URL, headers=headers)
        seen.append((resp.status, await resp.json()))
        return check(*seen[-1])

    await eventually(
        answered, WITHIN_S, "the expected answer", every_s=0.01, diagnostics=lambda: f"{seen[-1]}"
    )


def code_is(status: int, code: str) -> Callable[[int, dict[str, Any]], bool]:
    """A check for an error answer with `status` and stable `code`."""
    return lambda s, body: s == status and body.get("code") == code


async def warm(client: Client, headers: dict[str, str], token: str, access_token: str) -> None:
    """Fetch the token twice and prove the token check, settings and account are cached."""
    for _ in range(2):
        resp = await client.get(TOKEN_URL, headers=headers)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["accessToken"] == access_token
    held = cache_of(client).entries.keys()
    assert {f"token:{sha256_hex(token)}", "settings", "acct:example"} <= held


async def wait_live(*clients: Client) -> None:
    """Wait until every app's cache has subscribed to the invalidation channel."""
    await eventually(
        lambda: all(cache_of(c).live for c in clients), 5.0, "both caches subscribe", every_s=0
    )


async def make_pair(a: Client, b: Client, core: Core, importer: Importer) -> Pair:
    """Import an account, create a '*' token, and warm both apps' caches."""
    token, meta = await core.tokens.create(["*"], None, "cache", None, SystemClock().now_ms())
    minted = await importer()
    await wait_live(a, b)
    pair = Pair(a, b, token, meta.id, minted["access_token"])
    for client in (a, b):
        await warm(client, pair.headers, token, pair.access_token)
    return pair


@pytest.fixture
async def pair(
    client: Client, make_client: MakeClient, core: Core, import_account: Importer, enabled: None
) -> Pair:
    """Two web apps on the same Redis, both caches live and warm."""
    return await make_pair(client, await make_client(), core, import_account)


@pytest.fixture
def cli_keys(config: Config) -> Keys:
    """The key layout another process (the CLI) uses."""
    return Keys(config.redis_prefix, config.schedule_partitions)


async def test_revoked_token(pair: Pair, core: Core) -> None:
    """A token revoked through one app gets 401 from the other within one second."""
    await core.tokens.revoke(pair.token_id)
    resp = await pair.a.get(TOKEN_URL, headers=pair.headers)
    assert resp.status == 401
    await within_one_second(pair.b, pair.headers, code_is(401, "Unauthorized"))


async def test_disabled_endpoint(pair: Pair) -> None:
    """Disabling the endpoint through one app's API gives 403 on the other within one second."""
    resp = await pair.a.put(
        "/v1/settings", json={"enableOAuthTokensApi": False}, headers=pair.headers
    )
    assert resp.status == 200, await resp.text()
    await within_one_second(pair.b, pair.headers, code_is(403, "ApiEndpointDisabled"))


async def test_deleted_account(pair: Pair) -> None:
    """An account deleted through one app is 404 AccountNotFound on the other within one second."""
    resp = await pair.a.delete("/v1/account/example", headers=pair.headers)
    assert resp.status == 200, await resp.text()
    await within_one_second(pair.b, pair.headers, code_is(404, "AccountNotFound"))


async def test_refreshed_token(pair: Pair, core: Core) -> None:
    """After a forced refresh through one app, the other serves the new token within one second."""
    resp = await pair.a.post("/v1/account/example/refresh", headers=pair.headers)
    assert resp.status == 200, await resp.text()
    fresh = core.accounts.access_token(await core.accounts.require("example"))
    assert fresh != pair.access_token
    await within_one_second(
        pair.b, pair.headers, lambda s, body: s == 200 and body["accessToken"] == fresh
    )


async def test_revoke_by_another_process(pair: Pair, redis: Redis, cli_keys: Keys) -> None:
    """A token revoked by another process (the CLI's store on Redis) is 401 on both apps."""
    await ApiTokenStore(redis, cli_keys).revoke(pair.token_id)
    for app in (pair.a, pair.b):
        await within_one_second(app, pair.headers, code_is(401, "Unauthorized"))


async def test_disable_by_another_process(pair: Pair, redis: Redis, cli_keys: Keys) -> None:
    """The endpoint disabled by another process (the CLI's store) is 403 on both apps."""
    await SettingsStore(redis, cli_keys).update({"enableOAuthTokensApi": False})
    for app in (pair.a, pair.b):
        await within_one_second(app, pair.headers, code_is(403, "ApiEndpointDisabled"))


async def test_invalidation_message_is_what_updates(
    pair: Pair, redis: Redis, cli_keys: Keys
) -> None:
    """A write without its invalidation stays unseen (the cache serves); the message updates it."""
    await redis.hset(cli_keys.settings, "enableOAuthTokensApi", "false")
    resp = await pair.b.get(TOKEN_URL, headers=pair.headers)
    assert resp.status == 200  # served from the cache: the TTL (5 s) has not passed
    await redis.publish(cli_keys.invalidations, "settings")
    await within_one_second(pair.b, pair.headers, code_is(403, "ApiEndpointDisabled"))


async def kill_subscriptions(redis: Redis) -> int:
    """Close every pub/sub connection on the server, as a network fault or failover would."""
    return await redis.client_kill_filter(_type="pubsub")  # CLIENT KILL TYPE pubsub


async def test_lost_subscription_goes_deaf_then_resubscribes(
    pair: Pair, redis: Redis, cli_keys: Keys
) -> None:
    """A killed subscription makes each cache flush and go not-live, then re-subscribe."""
    caches = [cache_of(pair.a), cache_of(pair.b)]
    epochs = [cache.epoch for cache in caches]
    assert await kill_subscriptions(redis) == 2
    await eventually(
        lambda: not any(cache.live for cache in caches),
        WITHIN_S,
        "both caches go not-live (stop serving) when their subscription is lost",
        every_s=0,  # every loop turn: the deaf spell is short
    )
    await eventually(
        lambda: all(cache.live for cache in caches), 5.0, "both caches re-subscribe", every_s=0
    )
    for cache, epoch in zip(caches, epochs, strict=True):
        assert cache.epoch > epoch and "acct:example" not in cache.entries  # flushed
    subscribers = await redis.pubsub_numsub(cli_keys.invalidations)
    assert subscribers == [(cli_keys.invalidations, 2)]
    await warm(pair.b, pair.headers, pair.token, pair.access_token)  # caching again ...
    await ApiTokenStore(redis, cli_keys).revoke(pair.token_id)
    await within_one_second(pair.b, pair.headers, code_is(401, "Unauthorized"))  # ... correctly


async def test_nothing_stale_while_resubscribing(pair: Pair, redis: Redis, cli_keys: Keys) -> None:
    """A token revoked while the subscription is being re-established is never served as valid."""
    cache = cache_of(pair.b)
    assert await kill_subscriptions(redis) == 2
    await ApiTokenStore(redis, cli_keys).revoke(pair.token_id)  # published to nobody
    answers: list[int] = []

    async def answered_once_resubscribed() -> bool:
        live = cache.live
        resp = await pair.b.get(TOKEN_URL, headers=pair.headers)
        answers.append(resp.status)
        assert answers[-1] == 401, f"stale answers after the revoke (live={live}): {answers}"
        return live and len(answers) > 1  # answered correctly while deaf and once re-subscribed

    await eventually(answered_once_resubscribed, 5.0, "the cache to re-subscribe", every_s=0.005)


class Blackhole:
    """A TCP proxy to Redis that can silently stop carrying subscriptions (no FIN, no RST)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.frozen = False
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: set[asyncio.Task[Any]] = set()

    async def start(self) -> int:
        """Listen on a free loopback port and return it."""
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [writer, up_writer]
        subscriber = False

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter, up: bool) -> None:
            nonlocal subscriber
            with contextlib.suppress(ConnectionError):
                while data := await src.read(65536):
                    subscriber = subscriber or (up and b"SUBSCRIBE" in data)
                    if subscriber and self.frozen:
                        continue  # swallowed: the peer waits forever
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pump(reader, up_writer, True), pump(up_reader, writer, False))

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self.server is not None:
            self.server.close()
        for writer in self.writers:
            writer.close()  # each pump then reads EOF and its handler ends
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5.0)


@pytest.fixture
async def blackhole(redis_server: RedisProcess) -> AsyncIterator[Blackhole]:
    """A freezable proxy in front of the test Redis."""
    proxy = Blackhole(redis_server.port)
    yield proxy
    await proxy.close()


async def test_silently_dead_subscription(
    client: Client,
    make_client: MakeClient,
    core: Core,
    import_account: Importer,
    enabled: None,
    config: Config,
    blackhole: Blackhole,
) -> None:
    """A subscription that silently stops delivering (no reset) still costs at most one second."""
    port = await blackhole.start()
    other = await make_client(dataclasses.replace(config, redis_url=f"redis://127.0.0.1:{port}/0"))
    pair = await make_pair(client, other, core, import_account)
    blackhole.frozen = True  # e.g. a NAT entry or a failed-over Redis: packets just vanish
    await core.tokens.revoke(pair.token_id)
    await within_one_second(pair.b, pair.headers, code_is(401, "Unauthorized"))
