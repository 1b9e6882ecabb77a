"""Fixtures of the settings-page tests: an operator password and a logged-in client."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.config import Config
from service.store.embedded import free_port
from service.web.app import create_app
from service.web.appkeys import ADMIN
from tests.conftest import wait_live
from tests.support.admin import PASSWORD, login
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def password(client: Client) -> str:
    """The operator's password, set as `tokenbroker admin set-password` does."""
    await client.app[ADMIN].set_password(PASSWORD)
    return PASSWORD


@pytest.fixture
async def operator(client: Client, password: str) -> Client:
    """The test client, logged in."""
    resp = await login(client, password)
    assert resp.status == 303, await resp.text()
    return client


@pytest.fixture(scope="module")
def site_port() -> int:
    """The port of the web app that the provider redirects back to."""
    return free_port()


@pytest.fixture(scope="module")
def site_idp(site_port: int) -> Iterator[Idp]:
    """A provider whose clients redirect to the site's /oauth/callback."""
    provider = Idp.start(redirect_uris=[f"http://127.0.0.1:{site_port}/oauth/callback"])
    yield provider
    provider.stop()


@pytest.fixture
async def site(
    aiohttp_client: Callable[..., Awaitable[Client]],
    config: Config,
    site_port: int,
    site_idp: Idp,
    redis: Redis,
) -> Client:
    """The web app on its fixed port (TOKENBROKER_BASE_URL there), with a password set."""
    site_idp.reset()
    cfg = dataclasses.replace(config, base_url=f"http://127.0.0.1:{site_port}")
    client = await aiohttp_client(create_app(cfg), server_kwargs={"port": site_port})
    await wait_live(client)
    await client.app[ADMIN].set_password(PASSWORD)
    return client
