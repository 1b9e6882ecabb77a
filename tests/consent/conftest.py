"""Fixtures of the consent tests: a provider whose redirect URI is the test app's callback."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.clock import ManualClock, SystemClock, iso
from service.config import Config
from service.core import Core
from service.store.embedded import free_port
from service.web.app import create_app
from service.web.appkeys import CORE
from tests.conftest import make_token, wait_live
from tests.support.consent import APP
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
ADDITIONAL_SCOPES = ["mail.read"]


@pytest.fixture(scope="module")
def flow_port() -> int:
    """The port the test web app listens on (picked before the provider registers it)."""
    return free_port()


@pytest.fixture(scope="module")
def flow_idp(flow_port: int) -> Iterator[Idp]:
    """A provider of this module whose clients redirect to the test app's /oauth/callback."""
    provider = Idp.start(redirect_uris=[f"http://127.0.0.1:{flow_port}/oauth/callback"])
    yield provider
    provider.stop()


@pytest.fixture
def flow_config(config: Config, flow_port: int) -> Config:
    """The service's configuration with TOKENBROKER_BASE_URL on the test app's port."""
    return dataclasses.replace(config, base_url=f"http://127.0.0.1:{flow_port}")


@pytest.fixture
def flow_clock() -> ManualClock:
    """The test app's clock: now, moving only when a test says so."""
    return ManualClock(SystemClock().now_ms())


@pytest.fixture
async def flow_client(
    aiohttp_client: Callable[..., Awaitable[Client]],
    flow_config: Config,
    flow_clock: ManualClock,
    flow_port: int,
    redis: Redis,
) -> Client:
    """The web app on its fixed port, following cache invalidations."""
    app = create_app(flow_config, clock=flow_clock)
    client = await aiohttp_client(app, server_kwargs={"port": flow_port})
    await wait_live(client)
    return client


@pytest.fixture
def flow_core(flow_client: Client) -> Core:
    """The test app's core."""
    return flow_client.app[CORE]


@pytest.fixture
async def flow_admin(flow_core: Core) -> dict[str, str]:
    """Headers with a `*` API token of the test app."""
    return {"Authorization": f"Bearer {await make_token(flow_core, '*')}"}


@pytest.fixture
async def flow_app(flow_core: Core, flow_idp: Idp) -> str:
    """An oidc app that knows only its issuer (endpoints discovered); returns its id."""
    body = {
        "id": APP,
        "provider": "oidc",
        "clientId": flow_idp.client_id,
        "clientSecret": flow_idp.client_secret,
        "issuer": flow_idp.issuer,
        "additionalScopes": ADDITIONAL_SCOPES,
    }
    await flow_core.apps.create(body, iso(SystemClock().now_ms()))
    return APP


@pytest.fixture(autouse=True)
def _flow_idp_clean(request: pytest.FixtureRequest) -> None:
    """Reset the module provider's faults and counters before tests that use it."""
    if "flow_idp" in request.fixturenames:
        request.getfixturevalue("flow_idp").reset()


@pytest.fixture
async def webhooks_on(flow_core: Core) -> None:
    """Turn webhooks on (to a closed port) so that events are queued in the streams."""
    await flow_core.settings.update(
        {"webhooks": "http://127.0.0.1:9/hooks", "webhooksEnabled": True}
    )
