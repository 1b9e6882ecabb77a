"""Warnings before a grant dies, end to end: consent, two workers, the link, re-consent."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest
from redis.asyncio import Redis

from service.clock import ManualClock, SystemClock, iso
from service.config import Config
from service.core import Core
from service.grant_watch import HOUR_MS, WEEK_MS, Expiring
from service.store.connection import create_redis
from tests.support.consent import Client, authorize_as, connect, events, follow, open_link
from tests.support.idp import Idp
from workers.worker import Worker

DAY_MS = 24 * HOUR_MS


@pytest.fixture
async def workers(flow_config: Config, flow_clock: ManualClock) -> AsyncIterator[list[Worker]]:
    """Two workers on the test Redis, each with its own connection, on the test app's clock."""
    async with aiohttp.ClientSession() as http:
        clients = [create_redis(flow_config) for _ in range(2)]
        yield [Worker(flow_config, client, http, flow_clock) for client in clients]
        for client in clients:
            await client.aclose()


async def both_check(workers: list[Worker]) -> list[Expiring]:
    """Both workers look at the grants at the same moment; what they recorded, together."""
    found = await asyncio.gather(*(w.grants.check() for w in workers))
    return [expiring for one in found for expiring in one]


async def warnings(redis: Redis, core: Core, account: str) -> list[dict[str, object]]:
    """The authenticationExpiring events of the account."""
    return [e for e in await events(redis, core, account) if e["event"] == "authenticationExpiring"]


async def score(core: Core, account: str) -> float | None:
    """The account's score in the grant deadline index."""
    key = core.keys.grant_deadlines(core.keys.partition_of(account))
    return await core.redis.zscore(key, account)


async def test_consent_records_the_deadline_the_response_gives(
    flow_client: Client,
    flow_core: Core,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_clock: ManualClock,
) -> None:
    """refresh_token_expires_in of the code exchange sets the deadline, indexed with it."""
    flow_idp.refresh_lifetime(3 * 86_400)
    resp = await connect(flow_client, flow_admin, flow_idp, "answered")
    assert resp.status == 200, await resp.text()
    account = await flow_core.accounts.require("answered")
    assert account.grant_deadline_ms == flow_clock.now_ms() + 3 * DAY_MS
    assert account.grant_deadline_from == "refresh_token_expires_in"
    assert await score(flow_core, "answered") == account.grant_deadline_ms


async def test_warned_at_48_and_6_hours_once_then_reconsent_clears(
    flow_client: Client,
    flow_core: Core,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_clock: ManualClock,
    webhooks_on: None,
    workers: list[Worker],
    redis: Redis,
) -> None:
    """Two workers: one warning at 48 h, one at 6 h; the link re-consents, which starts over."""
    app = await flow_core.apps.require(flow_app)
    await flow_core.apps.update(app, {"publishingStatus": "testing"}, iso(SystemClock().now_ms()))
    assert (await connect(flow_client, flow_admin, flow_idp, "tester")).status == 200
    consented = await flow_core.accounts.require("tester")
    deadline = flow_clock.now_ms() + WEEK_MS
    assert consented.grant_deadline_ms == deadline
    assert consented.grant_deadline_from == "publishingStatus:testing"
    flow_clock.advance(WEEK_MS - 49 * HOUR_MS)
    assert await both_check(workers) == []
    flow_clock.advance(2 * HOUR_MS)
    assert [e.stage for e in await both_check(workers)] == ["warning"]
    assert await both_check(workers) == []
    flow_clock.advance(42 * HOUR_MS)
    assert [e.stage for e in await both_check(workers)] == ["final"]
    assert await both_check(workers) == []
    sent = await warnings(redis, flow_core, "tester")
    assert [(e["data"]["stage"], e["data"]["hoursLeft"]) for e in sent] == [  # type: ignore[index]
        ("warning", 47),
        ("final", 5),
    ]
    data = sent[-1]["data"]
    assert isinstance(data, dict) and data["deadline"] == iso(deadline)
    assert (
        data["urlExpires"] == iso(deadline + DAY_MS)
        and data["source"] == "publishingStatus:testing"
    )
    # The user follows the link now: the provider signs its id_token on the real clock.
    flow_clock.advance(SystemClock().now_ms() - flow_clock.now_ms())
    opened = await open_link(flow_client, str(data["url"]))
    assert opened.status == 303, await opened.text()
    callback = await authorize_as(flow_idp, opened.headers["Location"], "tester")
    assert (await follow(flow_client, callback)).status == 200
    renewed = await flow_core.accounts.require("tester")
    assert renewed.grant_gen == consented.grant_gen + 1 and renewed.grant_notice is None
    assert renewed.grant_deadline_ms == flow_clock.now_ms() + WEEK_MS
    assert await score(flow_core, "tester") == renewed.grant_deadline_ms
    assert await both_check(workers) == []
    flow_clock.advance(4 * DAY_MS)
    assert await both_check(workers) == []
    assert len(await warnings(redis, flow_core, "tester")) == 2
    flow_clock.advance(2 * DAY_MS)  # the new grant's own 48 h warning, once
    assert [e.stage for e in await both_check(workers)] == ["warning"]
    assert len(await warnings(redis, flow_core, "tester")) == 3
