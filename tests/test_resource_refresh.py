"""Per-resource refreshes survive Redis going away after the provider rotated the token."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.store.embedded import RedisProcess
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.polling import eventually

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]
GRAPH = "https://graph.microsoft.com"
CONSENTED = f"https://outlook.office.com/IMAP.AccessAsUser.All {GRAPH}/Mail.Read"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private redis-server (AOF on) that this test may stop and start again."""
    server = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(server.start)
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def private_client(store: RedisProcess, make_client: MakeClient, config: Config) -> Client:
    """A web app whose Redis is the private server."""
    return await make_client(dataclasses.replace(config, redis_url=store.url))


async def _seed(core: Core, client: Client, idp: Idp) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    await core.settings.update({"enableOAuthTokensApi": True})
    app = {
        "id": "ms",
        "provider": "outlook",
        "authority": "organizations",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "tokenUrl": idp.token_url,
        "additionalScopes": [f"{GRAPH}/Mail.Read"],
    }
    await core.apps.create(app, iso(SystemClock().now_ms()))
    minted = idp.mint("outage-user", "openid email offline_access", resource_scopes=CONSENTED)
    oauth2 = {"provider": "ms", "auth": {"user": "u@example.test"}}
    oauth2["refreshToken"] = str(minted["refresh_token"])
    resp = await client.post(
        "/v1/account", json={"account": "ms", "oauth2": oauth2}, headers=headers
    )
    assert resp.status == 200, await resp.text()
    return headers


async def test_a_rotation_is_stored_once_redis_is_back(
    private_client: Client, store: RedisProcess, idp: Idp
) -> None:
    """Redis down while the provider rotates: the store is retried and the new token kept."""
    core: Core = private_client.app[CORE]
    headers = await _seed(core, private_client, idp)
    idp.delay(1500, 1500, 30_000)
    request = asyncio.ensure_future(
        private_client.get("/v1/account/ms/oauth-token?resource=graph", headers=headers)
    )
    await eventually(lambda: idp.stats()["refresh_in_flight"] == 1, 5, "the refresh to be sent")
    await asyncio.to_thread(store.stop)
    await eventually(lambda: idp.stats()["refresh_ok"] == 1, 5, "the provider to rotate")
    await asyncio.to_thread(store.start)
    resp = await asyncio.wait_for(request, 30)
    body = await resp.json()
    assert resp.status == 200, body
    assert idp.audience(body["accessToken"])[0] == GRAPH
    stored = core.accounts.refresh_token(await core.accounts.require("ms"))
    assert idp.active(stored).active  # the rotated refresh token, not the consumed one
