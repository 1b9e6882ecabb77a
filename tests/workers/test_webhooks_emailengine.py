"""EmailEngine-style deliveries from the real webhook loop, checked by an EmailEngine receiver."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis
from standardwebhooks.webhooks import Webhook

from service.clock import ManualClock
from service.store.embedded import RedisProcess
from service.webhooks.deliveries import Deliveries
from service.webhooks.headers import WebhookHeaders
from service.webhooks.secrets import WebhookSecrets
from service.webhooks.service_secret import ServiceSecret
from tests import test_secrets_at_rest as at_rest
from tests.support.ee_receiver import ee_verify, recorded_secret, recorded_shapes, shape
from tests.support.idp import Idp
from tests.support.logs import Lines
from tests.support.receiver import Receiver
from tests.workers import test_webhooks as standard_tests
from workers.worker import Worker

Secrets, dump_redis = at_rest.Secrets, at_rest.dump_redis
fast_retries = standard_tests.fast_retries
# the fixtures this module shares: the captured log and published messages
captured_log, published = at_rest.captured_log, at_rest.published
Adder = Callable[..., Awaitable[dict[str, Any]]]
DATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


async def emailengine(worker: Worker, receiver: Receiver, **more: Any) -> dict[str, Any]:
    """Switch webhooks to the EmailEngine format at the receiver; return the answer."""
    core = worker.core
    sealers = (
        WebhookHeaders(core.redis, core.keys, core.cipher),
        ServiceSecret(core.redis, core.keys, core.cipher),
    )
    values = {
        "webhooks": receiver.url,
        "webhooksEnabled": True,
        "webhookFormat": "emailengine",
        "webhookHeaders": {"X-Api-Key": "hdr-secret"},
        **more,
    }
    return await core.settings.update(values, *sealers)


def lower(headers: dict[str, str]) -> dict[str, str]:
    """Header names in lower case."""
    return {k.lower(): v for k, v in headers.items()}


async def test_deliveries_verify_and_have_the_recorded_shape(
    worker: Worker, add_account: Adder, receiver: Receiver, clock: ManualClock, idp: Idp
) -> None:
    """Added, refused for good and deleted: each body verifies and has EmailEngine's shape."""
    answer = await emailengine(worker, receiver)
    secret = answer["serviceSecret"]  # generated now, shown this once
    assert isinstance(secret, str) and re.fullmatch(r"[0-9a-f]{32}", secret)
    await add_account(expires_in_s=600)
    clock.advance(6 * 60_000)
    idp.fault("error", error="invalid_grant", error_description="revoked")
    await worker.run(burst=True)
    account = await worker.core.accounts.require("a1")
    await worker.core.accounts.delete(account, clock.now_ms())
    await worker.webhooks.run(burst=True)
    events = [orjson.loads(body)["event"] for _, body in receiver.got]
    assert events == ["accountAdded", "authenticationError", "accountDeleted"]
    core = worker.core
    delivered = await Deliveries(core.redis, core.keys, core.scripts).list("delivered", 10)
    ids = {d["event"]: d["id"] for d in delivered}
    for headers, body in receiver.got:
        assert ee_verify(secret, body, headers)
        got = orjson.loads(body)
        hdr = lower(headers)
        assert hdr["x-ee-wh-event-id"] == ids[got["event"]] and "id" not in got
        assert hdr["x-ee-wh-attempts-made"] == "0" and hdr["x-api-key"] == "hdr-secret"
        assert hdr["content-type"] == "application/json" and "webhook-signature" not in hdr
        assert got["serviceUrl"] == worker.config.base_url and DATE.match(got["date"])
        assert got["account"] == "a1"
        if got["event"] == "authenticationError":
            assert got["data"]["tokenRequest"]["response"]["error"] == "invalid_grant"
            del got["data"]["tokenRequest"]  # EmailEngine's when the token endpoint answered
        assert shape(got) in recorded_shapes(got["event"]), got


async def test_retries_keep_the_event_id_then_dead_letter_and_redeliver(
    worker: Worker, add_account: Adder, receiver: Receiver, clock: ManualClock
) -> None:
    """Retries carry one event id and a growing attempt count; a dead letter redelivers."""
    fast_retries(worker, budget_s=30)
    secret = (await emailengine(worker, receiver))["serviceSecret"]
    receiver.status = 500
    await add_account()
    deliveries = Deliveries(worker.core.redis, worker.core.keys, worker.core.scripts)
    for _ in range(20):
        await worker.webhooks.run(burst=True)
        clock.advance(20_000)
        if await deliveries.list("failed", 10):
            break
    dead = await deliveries.list("failed", 10)
    assert len(dead) == 1 and len(receiver.got) > 1
    made = [int(lower(h)["x-ee-wh-attempts-made"]) for h, _ in receiver.got]
    assert made == list(range(len(receiver.got)))
    assert {lower(h)["x-ee-wh-event-id"] for h, _ in receiver.got} == {dead[0]["id"]}
    assert all(ee_verify(secret, body, headers) for headers, body in receiver.got)
    receiver.status = 200
    assert await deliveries.redeliver(dead[0]["id"], clock.now_ms())
    await worker.webhooks.run(burst=True)
    headers, body = receiver.got[-1]
    assert lower(headers)["x-ee-wh-event-id"] == dead[0]["id"]
    assert ee_verify(secret, body, headers) and await deliveries.list("failed", 10) == []


async def test_set_secret_signs_and_switching_back_is_standard(
    worker: Worker, add_account: Adder, receiver: Receiver, clock: ManualClock
) -> None:
    """A serviceSecret set by the operator signs; back on standard, Standard Webhooks again."""
    answer = await emailengine(worker, receiver, serviceSecret=recorded_secret())
    assert answer["serviceSecret"] == recorded_secret()  # the answer that set it
    assert (await worker.core.settings.all())["serviceSecret"] is True  # then write-only
    await add_account("e1")
    await worker.webhooks.run(burst=True)
    assert ee_verify(recorded_secret(), receiver.got[-1][1], receiver.got[-1][0])
    core = worker.core
    standard = await core.settings.update({"webhookFormat": "standard"})
    assert standard["serviceSecret"] is True
    hook_secret = await WebhookSecrets(core.redis, core.keys, core.cipher).rotate(clock.now_ms())
    await add_account("s1")
    await worker.webhooks.run(burst=True)
    headers, body = receiver.got[-1]
    Webhook(hook_secret).verify(body, lower(headers))
    assert set(orjson.loads(body)) == {"id", "event", "date", "account", "app", "data"}
    assert not any(name.startswith("x-ee-") for name in lower(headers))
    assert len(receiver.got) == 2


async def test_emailengine_format_needs_no_standard_secret(
    worker: Worker, add_account: Adder, receiver: Receiver
) -> None:
    """Without a Standard Webhooks secret, EmailEngine-style deliveries still go out signed."""
    core = worker.core
    await core.settings.update({"webhooks": receiver.url, "webhookFormat": "standard"})
    await add_account("n1")
    await worker.webhooks.run(burst=True)
    assert receiver.got == []  # standard: nothing is sent unsigned
    answer = await emailengine(worker, receiver)
    await worker.webhooks.run(burst=True)
    assert len(receiver.got) == 1
    assert ee_verify(answer["serviceSecret"], receiver.got[0][1], receiver.got[0][0])


async def test_service_secret_never_in_redis_logs_or_later_answers(
    captured_log: Lines,
    published: list[Any],
    redis_server: RedisProcess,
    redis: Redis,
    client: TestClient[web.Request, web.Application],
    admin: dict[str, str],
    worker: Worker,
    add_account: Adder,
    receiver: Receiver,
) -> None:
    """The serviceSecret: sealed at rest, never logged, shown once by the answer that set it."""
    found = Secrets()
    later: list[str] = []
    body = {"webhooks": receiver.url, "webhooksEnabled": True, "webhookFormat": "emailengine"}
    resp = await client.put("/v1/settings", json=body, headers=admin)
    generated = (await resp.json())["serviceSecret"]
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    assert isinstance(generated, str)
    resp = await client.put("/v1/settings", json={"webhookFormat": "emailengine"}, headers=admin)
    later.append(await resp.text())  # already set: not generated again, not shown
    assert (await resp.json())["serviceSecret"] is True
    await add_account("k1")
    await worker.webhooks.run(burst=True)
    assert ee_verify(generated, receiver.got[-1][1], receiver.got[-1][0])

    chosen = "operator-chosen-service-secret-0123456789"
    resp = await client.put("/v1/settings", json={"serviceSecret": chosen}, headers=admin)
    assert (await resp.json())["serviceSecret"] == chosen
    assert resp.headers["Cache-Control"] == "no-store"
    resp = await client.get("/v1/settings", headers=admin)
    resp = await client.put("/v1/settings", json=await resp.json(), headers=admin)
    later.append(await resp.text())  # what GET showed, given back: the secret stays
    assert resp.status == 200 and (await resp.json())["serviceSecret"] is True
    await add_account("k2")
    await worker.webhooks.run(burst=True)
    assert ee_verify(chosen, receiver.got[-1][1], receiver.got[-1][0])
    for path in ("/v1/settings", "/v1/webhooks/deliveries?status=delivered"):
        resp = await client.get(path, headers=admin)
        later.append(await resp.text() + str(dict(resp.headers)))
    resp = await client.put("/v1/settings", json={"serviceSecret": 5}, headers=admin)
    assert resp.status == 400
    later.append(await resp.text())

    found.webhook |= {generated, chosen}
    dump, _ = await dump_redis(redis_server.url)
    assert await redis.hexists(worker.core.keys.settings, "serviceSecret")
    found.assert_absent(dump, "Redis (a key or a value)")
    found.assert_absent(repr(published), "a published message")
    assert captured_log.events("webhook"), captured_log.text[:2000]
    found.assert_absent(captured_log.text, "the log")
    for text in later:
        found.assert_absent(text, "an answer after the secret was set")
