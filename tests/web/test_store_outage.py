"""Redis going away: fast 503 StoreUnavailable answers, /health still up, recovery without restart.

Each test runs its own redis-server (AOF on, its own data dir and port): the session server
is shared by every other test and is never stopped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.store.embedded import RedisProcess
from service.web.appkeys import CORE
from tests.conftest import make_token
from tests.support.polling import eventually

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]

ANSWER_WITHIN_S = 2.0  # every answer while Redis is down
RECOVER_WITHIN_S = 10.0  # after Redis is back
ACCESS_TOKEN = "outage-access-token"
ACCOUNT = "outage"
APP = "outage-app"


@pytest.fixture
async def idle_store(tmp_path: Path) -> AsyncIterator[RedisProcess]:
    """A private redis-server, not started; stopped (whatever its state) at the end.

    Fixtures that take it come before `make_client` so that the app closes first.
    """
    server = RedisProcess(tmp_path / "redis")
    yield server
    await asyncio.to_thread(server.stop)


@pytest.fixture
async def store(idle_store: RedisProcess) -> RedisProcess:
    """The private redis-server, started."""
    await asyncio.to_thread(idle_store.start)
    return idle_store


@pytest.fixture
async def outage_client(store: RedisProcess, make_client: MakeClient, config: Config) -> Client:
    """A web app whose Redis is the private server."""
    client = await make_client(dataclasses.replace(config, redis_url=store.url))
    await eventually(
        lambda: client.app[CORE].cache.live, RECOVER_WITHIN_S, "the cache listener to subscribe"
    )
    return client


async def timed(request: Awaitable[ClientResponse]) -> tuple[ClientResponse, dict[str, Any], float]:
    """Await a request; return the response, its JSON body and how long it took."""
    started = time.monotonic()
    resp = await asyncio.wait_for(request, timeout=ANSWER_WITHIN_S * 3)
    body = await resp.json()
    return resp, body, time.monotonic() - started


def assert_store_unavailable(
    resp: ClientResponse, body: dict[str, Any], took_s: float, what: str = ""
) -> None:
    """Assert a quick 503 StoreUnavailable in the API's error shape."""
    assert resp.status == 503, (what, body)
    assert body == {
        "statusCode": 503,
        "error": "Service Unavailable",
        "message": body["message"],
        "code": "StoreUnavailable",
    }, body
    assert took_s < ANSWER_WITHIN_S, f"{resp.method} {resp.url.path} took {took_s:.2f} s"


async def seed(client: Client) -> dict[str, str]:
    """Create an app, an imported account and an enabled endpoint; return `*` headers."""
    core: Core = client.app[CORE]
    headers = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    await core.settings.update({"enableOAuthTokensApi": True})
    app = {
        "id": APP,
        "provider": "oidc",
        "clientId": "cid",
        "clientSecret": "csecret",
        "tokenUrl": "http://127.0.0.1:9/token",
    }
    await core.apps.create(app, iso(SystemClock().now_ms()))
    body = {
        "account": ACCOUNT,
        "oauth2": {
            "provider": APP,
            "auth": {"user": "outage@example.test"},
            "refreshToken": "outage-refresh-token",
            "accessToken": ACCESS_TOKEN,
            "expires": iso(SystemClock().now_ms() + 3_600_000),
        },
    }
    resp = await client.post("/v1/account", json=body, headers=headers)
    assert resp.status == 200, await resp.text()
    return headers


def reads(client: Client, headers: dict[str, str]) -> dict[str, Callable[[], Any]]:
    """Requests that each need Redis, by name."""
    account = f"/v1/account/{ACCOUNT}"
    import_body = {
        "account": "during-outage",
        "oauth2": {"provider": APP, "auth": {"user": "u"}, "refreshToken": "r"},
    }
    return {
        "token": lambda: client.get(f"{account}/oauth-token", headers=headers),
        "accounts": lambda: client.get("/v1/accounts", headers=headers),
        "account": lambda: client.get(account, headers=headers),
        "apps": lambda: client.get("/v1/oauth2", headers=headers),
        "settings": lambda: client.get("/v1/settings", headers=headers),
        "settings_put": lambda: client.put(
            "/v1/settings", json={"webhooksEnabled": False}, headers=headers
        ),
        "import": lambda: client.post("/v1/account", json=import_body, headers=headers),
        "refresh": lambda: client.post(f"{account}/refresh", headers=headers),
        "delete": lambda: client.delete(account, headers=headers),
    }


async def test_outage_answers_503_fast(outage_client: Client, store: RedisProcess) -> None:
    """With Redis stopped, every store-backed route answers 503 StoreUnavailable within 2 s."""
    client = outage_client
    headers = await seed(client)
    resp = await client.get(f"/v1/account/{ACCOUNT}/oauth-token", headers=headers)
    assert resp.status == 200, await resp.text()

    await asyncio.to_thread(store.stop)

    # The token endpoint may answer from the process cache until the cache notices that its
    # subscription is gone; after that it must answer 503, quickly, never 500 or a hang.
    async def token_unavailable() -> bool:
        resp, body, took = await timed(
            client.get(f"/v1/account/{ACCOUNT}/oauth-token", headers=headers)
        )
        assert took < ANSWER_WITHIN_S and resp.status in (200, 503), body
        return resp.status == 503

    await eventually(token_unavailable, ANSWER_WITHIN_S, "the token endpoint to answer 503")
    for name, request in reads(client, headers).items():
        resp, body, took = await timed(request())
        assert_store_unavailable(resp, body, took, name)
    resp, body, took = await timed(client.get("/ready"))
    assert_store_unavailable(resp, body, took)
    resp, body, took = await timed(client.get("/health"))
    assert resp.status == 200 and took < ANSWER_WITHIN_S, body
    # a request with an unknown token cannot be told apart from a valid one: 503, not 401
    resp, body, took = await timed(
        client.get("/v1/accounts", headers={"Authorization": "Bearer unknown"})
    )
    assert_store_unavailable(resp, body, took)


async def test_recovers_without_restart_and_keeps_data(
    outage_client: Client, store: RedisProcess
) -> None:
    """After Redis is back on the same port, the same app answers 200 with the data from before."""
    client = outage_client
    headers = await seed(client)
    await asyncio.to_thread(store.stop)
    resp, body, took = await timed(client.get("/v1/accounts", headers=headers))
    assert_store_unavailable(resp, body, took)

    await asyncio.to_thread(store.start)

    async def ready() -> bool:
        resp, _, took = await timed(client.get("/ready"))
        assert took < ANSWER_WITHIN_S
        return resp.status == 200

    await eventually(ready, RECOVER_WITHIN_S, "/ready to answer 200")
    resp = await client.get("/v1/accounts", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert [a["account"] for a in body["accounts"]] == [ACCOUNT]
    resp = await client.get(f"/v1/account/{ACCOUNT}/oauth-token", headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["accessToken"] == ACCESS_TOKEN and body["user"] == "outage@example.test"
    resp = await client.get(f"/v1/oauth2/{APP}", headers=headers)
    assert resp.status == 200 and (await resp.json())["clientSecretSet"] is True
    assert (await (await client.get("/v1/settings", headers=headers)).json())[
        "enableOAuthTokensApi"
    ] is True
    # the cache follows invalidations again: a change made elsewhere shows at once
    await eventually(
        lambda: client.app[CORE].cache.live, RECOVER_WITHIN_S, "the cache listener to resubscribe"
    )
    resp = await client.delete(f"/v1/account/{ACCOUNT}", headers=headers)
    assert resp.status == 200, await resp.text()
    resp = await client.get(f"/v1/account/{ACCOUNT}/oauth-token", headers=headers)
    assert resp.status == 404 and (await resp.json())["code"] == "AccountNotFound"


async def test_token_answers_during_outage_are_counted(
    outage_client: Client, store: RedisProcess
) -> None:
    """Each 503 of the token endpoint while Redis is down shows on /metrics as StoreUnavailable."""
    client = outage_client
    headers = await seed(client)
    await asyncio.to_thread(store.stop)
    answers: list[int] = []

    async def token_unavailable() -> bool:
        resp, _, _ = await timed(client.get(f"/v1/account/{ACCOUNT}/oauth-token", headers=headers))
        answers.append(resp.status)
        return resp.status == 503

    await eventually(token_unavailable, ANSWER_WITHIN_S, "the token endpoint to answer 503")
    await asyncio.to_thread(store.start)

    async def scraped() -> bool:
        return (await client.get("/metrics", headers=headers)).status == 200

    await eventually(scraped, RECOVER_WITHIN_S, "/metrics to answer again")
    text = await (await client.get("/metrics", headers=headers)).text()
    unavailable = 'tokenbroker_token_requests_total{code="StoreUnavailable"}'
    assert f"{unavailable} {float(answers.count(503))}" in text
    assert f'tokenbroker_token_requests_total{{code="ok"}} {float(answers.count(200))}' in text


async def test_writes_during_outage_are_not_half_done(
    outage_client: Client, store: RedisProcess
) -> None:
    """A write refused with 503 during the outage has left nothing behind once Redis is back."""
    client = outage_client
    headers = await seed(client)
    await asyncio.to_thread(store.stop)
    body = {
        "account": "late",
        "oauth2": {"provider": APP, "auth": {"user": "u"}, "refreshToken": "r"},
    }
    resp, answer, took = await timed(client.post("/v1/account", json=body, headers=headers))
    assert_store_unavailable(resp, answer, took)
    await asyncio.to_thread(store.start)
    await eventually(
        lambda: _status(client.get("/v1/accounts", headers=headers), 200),
        RECOVER_WITHIN_S,
        "/v1/accounts to work",
    )
    resp = await client.get("/v1/account/late", headers=headers)
    assert resp.status == 404, await resp.text()


async def test_starts_while_redis_is_down(
    idle_store: RedisProcess, make_client: MakeClient, config: Config
) -> None:
    """An app started while Redis is down answers /health 200, 503 elsewhere, then recovers."""
    server = idle_store
    client = await make_client(dataclasses.replace(config, redis_url=server.url), live=False)
    resp, body, took = await timed(client.get("/health"))
    assert resp.status == 200 and took < ANSWER_WITHIN_S, body
    resp, body, took = await timed(client.get("/ready"))
    assert_store_unavailable(resp, body, took)
    resp, body, took = await timed(
        client.get("/v1/accounts", headers={"Authorization": "Bearer whatever"})
    )
    assert_store_unavailable(resp, body, took)

    await asyncio.to_thread(server.start)
    await eventually(
        lambda: _status(client.get("/ready"), 200), RECOVER_WITHIN_S, "/ready to answer 200"
    )
    token = await make_token(client.app[CORE], "api")
    resp = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 200, await resp.text()
    await eventually(
        lambda: client.app[CORE].cache.live, RECOVER_WITHIN_S, "the cache listener to subscribe"
    )


async def _status(request: Awaitable[ClientResponse], expected: int) -> bool:
    resp = await request
    await resp.read()
    return resp.status == expected
