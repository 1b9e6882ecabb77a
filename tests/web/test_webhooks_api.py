"""Webhook routes: the secret is shown once, deliveries are listed, test events are signed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from service.core import Core
from service.webhooks.headers import MASK, WebhookHeaders
from tests.test_signing import verify

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[tuple[dict[str, str], bytes]]]]:
    """A real receiver answering 200 and recording requests; yields (url, requests)."""
    got: list[tuple[dict[str, str], bytes]] = []

    async def handle(request: web.Request) -> web.Response:
        got.append((dict(request.headers), await request.read()))
        return web.Response()

    app = web.Application()
    app.router.add_post("/in", handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/in")), got
    await server.close()


async def test_secret_shown_once(client: Client, admin: dict[str, str], redis: Redis) -> None:
    """Rotation answers the whsec_ secret once; settings and Redis never show it in clear."""
    resp = await client.post("/v1/settings/webhook-secret", headers=admin)
    body = await resp.json()
    assert resp.status == 200 and body["secret"].startswith("whsec_")
    assert resp.headers["Cache-Control"] == "no-store"
    settings = await (await client.get("/v1/settings", headers=admin)).text()
    assert body["secret"] not in settings and "webhookSecret" not in settings
    stored = await redis.hgetall("tb:{g}:settings")
    assert body["secret"] not in str(stored)


async def test_send_test_event(
    client: Client, admin: dict[str, str], receiver: tuple[str, list[tuple[dict[str, str], bytes]]]
) -> None:
    """The test event reaches the receiver signed; without a URL or secret it is 409."""
    url, got = receiver
    resp = await client.post("/v1/webhooks/test", headers=admin)
    assert resp.status == 409
    assert (await resp.json())["code"] == "WebhookNotConfigured"
    await client.put("/v1/settings", headers=admin, json={"webhooks": url})
    secret = (await (await client.post("/v1/settings/webhook-secret", headers=admin)).json())[
        "secret"
    ]
    resp = await client.post("/v1/webhooks/test", headers=admin)
    body = await resp.json()
    assert resp.status == 200 and body["delivered"] is True and body["status"] == 200, body
    headers, raw = got[0]
    assert headers["webhook-id"] == body["id"]
    assert verify(
        secret,
        headers["webhook-id"],
        headers["webhook-timestamp"],
        raw,
        headers["webhook-signature"],
    )


async def test_deliveries_listing_and_redeliver(client: Client, admin: dict[str, str]) -> None:
    """Deliveries list by status; unknown statuses and unknown dead letters are refused."""
    for status in ("pending", "failed", "delivered"):
        resp = await client.get(f"/v1/webhooks/deliveries?status={status}", headers=admin)
        assert resp.status == 200
        assert (await resp.json())["deliveries"] == []
    resp = await client.get("/v1/webhooks/deliveries?status=lost", headers=admin)
    assert resp.status == 400
    resp = await client.post("/v1/webhooks/deliveries/msg_nope/redeliver", headers=admin)
    assert resp.status == 404
    assert (await resp.json())["code"] == "DeliveryNotFound"


async def test_webhook_header_values_checked(client: Client, core: Core) -> None:
    """Header names must be HTTP tokens and values single lines (no header injection)."""
    token = {
        "Authorization": f"Bearer {(await core.tokens.create(['api'], None, None, None, 0))[0]}"
    }
    for headers in ({"X-Ok\r\nEvil": "1"}, {"X-Ok": "a\r\nEvil: 1"}):
        resp = await client.put("/v1/settings", headers=token, json={"webhookHeaders": headers})
        assert resp.status == 400


async def test_unsendable_header_is_a_failed_test_event(
    client: Client,
    admin: dict[str, str],
    core: Core,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    """A stored header the client refuses to send (a NUL) is a failed attempt, not a 500."""
    url, got = receiver
    await client.put("/v1/settings", headers=admin, json={"webhooks": url})
    await client.post("/v1/settings/webhook-secret", headers=admin)
    await store_headers_unchecked(core, {"X-Team": "a\x00b"})  # as stored before the check
    resp = await client.post("/v1/webhooks/test", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["delivered"] is False and body["status"] is None
    assert body["error"] == "failed: ValueError" and got == []


async def store_headers_unchecked(core: Core, headers: dict[str, str]) -> None:
    """Store custom headers without the save-time check (as older versions did)."""
    sealer = WebhookHeaders(core.redis, core.keys, core.cipher)
    await core.settings.update({"webhookHeaders": headers}, sealer)


async def test_header_values_write_only_and_sealed(
    client: Client,
    admin: dict[str, str],
    redis: Redis,
    receiver: tuple[str, list[tuple[dict[str, str], bytes]]],
) -> None:
    """Header values are masked in every answer and not in clear in Redis, yet sent as set.

    A masked value given back keeps the stored one; a masked value of a header that has
    none is refused.
    """
    url, got = receiver
    secret_value, other_value = "Bearer hook-s3cret-1", "team-s3cret-2"
    headers = {"Authorization": secret_value, "X-Team": other_value}
    body = {"webhooks": url, "webhookHeaders": headers}
    resp = await client.put("/v1/settings", headers=admin, json=body)
    answers = [await resp.text()]
    resp = await client.get("/v1/settings", headers=admin)
    answers.append(await resp.text())
    shown = (await resp.json())["webhookHeaders"]
    assert shown == {"Authorization": MASK, "X-Team": MASK}
    stored = await redis.hgetall("tb:{g}:settings")
    assert set(orjson.loads(stored["webhookHeaders"]).values()) == {MASK}
    for value in (secret_value, other_value):
        assert all(value not in answer for answer in answers)
        assert value not in str(stored)
    kept = {"Authorization": MASK, "X-Env": "prod"}
    resp = await client.put("/v1/settings", headers=admin, json={"webhookHeaders": kept})
    assert (await resp.json())["webhookHeaders"] == {"Authorization": MASK, "X-Env": MASK}
    await client.post("/v1/settings/webhook-secret", headers=admin)
    assert (await (await client.post("/v1/webhooks/test", headers=admin)).json())["delivered"]
    sent = got[-1][0]
    assert sent["Authorization"] == secret_value and sent["X-Env"] == "prod"
    assert "X-Team" not in sent
    body = {"webhookHeaders": {"X-New": MASK}}
    resp = await client.put("/v1/settings", headers=admin, json=body)
    answer = await resp.json()
    assert resp.status == 400 and answer["code"] == "InvalidWebhookHeader"
    assert answer["details"]["reason"] == "noStoredValue"

