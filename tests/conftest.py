"""Shared fixtures: a private redis-server, the test OAuth2 provider, apps and clients."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.store.embedded import RedisProcess
from service.web.app import create_app
from service.web.appkeys import CORE
from tests.support.idp import Idp
from tests.support.polling import eventually
from tests.support.receiver import Receiver, serving_receiver

ClientFactory = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
TEST_SECRET = bytes(range(32))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisProcess]:
    """A redis-server of our own on a free loopback port (AOF on), for the whole run."""
    server = RedisProcess(Path(tmp_path_factory.mktemp("redis")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def idp() -> Iterator[Idp]:
    """The real OAuth2/OIDC provider (oidc-provider on Node.js) on a free loopback port."""
    provider = Idp.start()
    yield provider
    provider.stop()


@pytest.fixture
async def redis(redis_server: RedisProcess) -> AsyncIterator[Redis]:
    """A client of the test Redis, emptied before each test."""
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def config(redis_server: RedisProcess) -> Config:
    """The configuration of the service under test (short timeouts, overrides allowed)."""
    return Config(
        redis_url=redis_server.url,
        secret_key=TEST_SECRET,
        base_url="http://127.0.0.1:8080",
        allow_endpoint_overrides=True,
        allow_private_urls=True,
        redis_timeout_s=0.5,
        provider_timeout_s=3.0,
        lock_ms=12_000,  # > 2 x provider_timeout_s + 5 s
        cache_ttl_s=5.0,
    )


@pytest.fixture
def make_client(
    aiohttp_client: ClientFactory, config: Config, redis: Redis
) -> Callable[..., Awaitable[TestClient[web.Request, web.Application]]]:
    """Start one more web app (a separate 'process' with its own cache) on the test Redis."""

    async def make(
        cfg: Config | None = None, *, live: bool = True
    ) -> TestClient[web.Request, web.Application]:
        client = await aiohttp_client(create_app(cfg or config))
        if live:
            await wait_live(client)
        return client

    return make


@pytest.fixture
async def client(
    make_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> TestClient[web.Request, web.Application]:
    """A test client of the web app."""
    return await make_client()


@pytest.fixture
def core(client: TestClient[web.Request, web.Application]) -> Core:
    """The client's app core (stores, cache, refresher)."""
    return client.app[CORE]


async def wait_live(client: TestClient[web.Request, web.Application]) -> None:
    """Wait (max 5 s) until the app's cache follows invalidations, so tests start settled."""
    await eventually(lambda: client.app[CORE].cache.live, 5, "the cache listener to subscribe")


async def make_token(
    core: Core, *scopes: str, account: str | None = None, expires_ms: int | None = None
) -> str:
    """Create an API token directly in the store and return it."""
    token, _ = await core.tokens.create(
        list(scopes), account, "test", expires_ms, SystemClock().now_ms()
    )
    return token


@pytest.fixture
async def admin(core: Core) -> dict[str, str]:
    """Headers with an API token that has every scope."""
    return {"Authorization": f"Bearer {await make_token(core, '*')}"}


@pytest.fixture
async def oidc_app(core: Core, idp: Idp) -> str:
    """An oidc app pointing at the test provider; returns its id."""
    body = {
        "id": "idp",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "authorizationUrl": idp.authorization_url,
        "revocationUrl": idp.revocation_url,
        "additionalScopes": ["mail.read"],
    }
    app = await core.apps.create(body, iso(SystemClock().now_ms()))
    return app.id


@pytest.fixture
def import_account(
    client: TestClient[web.Request, web.Application],
    admin: dict[str, str],
    oidc_app: str,
    idp: Idp,
) -> Callable[..., Awaitable[dict[str, Any]]]:
    """Import an account with a refresh token minted at the provider; returns the minted set."""

    async def do(
        account: str = "example", *, expires: str | None = None, with_access: bool = True
    ) -> dict[str, Any]:
        minted = idp.mint(f"{account}-user", "openid email profile offline_access mail.read")
        oauth2: dict[str, Any] = {
            "provider": oidc_app,
            "auth": {"user": f"{account}@example.test"},
            "refreshToken": minted["refresh_token"],
        }
        if with_access:
            oauth2["accessToken"] = minted["access_token"]
            oauth2["expires"] = expires or iso(SystemClock().now_ms() + 3_600_000)
        resp = await client.post(
            "/v1/account", json={"account": account, "oauth2": oauth2}, headers=admin
        )
        assert resp.status == 200, await resp.text()
        return minted

    return do


@pytest.fixture
async def enabled(core: Core) -> None:
    """Enable the oauth-token endpoint the way the CLI does."""
    await core.settings.update({"enableOAuthTokensApi": True})


@pytest.fixture(autouse=True)
def _idp_clean(request: pytest.FixtureRequest) -> None:
    """Reset the provider's faults and counters before tests that use it."""
    if "idp" in request.fixturenames:
        request.getfixturevalue("idp").reset()


os.environ.setdefault("TOKENBROKER_LOG_FORMAT", "json")


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A real webhook receiver on a loopback port, recording every request."""
    async with serving_receiver() as rec:
        yield rec
