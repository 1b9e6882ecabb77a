"""Expiry notices for apps' credentials: 14 and 3 days ahead, an app error when one dies."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any, cast

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import ManualClock, iso
from service.config import Config
from service.core import Core
from service.credential_watch import DAY_MS, CredentialWatch, stage_of
from tests.web.test_metrics import sample

Client = TestClient[web.Request, web.Application]
START_MS = 1_900_000_000_000  # 2030-03-17
HOUR_MS = 3_600_000


async def _app(core: Core, expires_in_days: float, **more: str) -> str:
    body = {
        "id": "watched",
        "provider": "outlook",
        "authority": "organizations",
        "clientId": "00000000-0000-0000-0000-000000000001",
        "clientSecret": "watched-secret",
        "credentialExpires": iso(START_MS + int(expires_in_days * DAY_MS)),
        **more,
    }
    return (await core.apps.create(body, iso(START_MS))).id


async def _events(core: Core) -> list[dict[str, Any]]:
    entries = cast(
        list[tuple[str, dict[str, str]]], await core.redis.xrange(core.keys.global_events)
    )
    return [orjson.loads(fields["payload"]) for _, fields in entries]


async def _hooks_on(core: Core) -> None:
    await core.settings.update({"webhooksEnabled": True, "webhooks": "https://hooks.example.com/x"})


def test_stages() -> None:
    """Over 14 days ok, then warning, final from 3 days, expired at the instant itself."""
    stages = [stage_of(days * DAY_MS, 14, 3) for days in (15, 14, 4, 3, 1, 0, -1)]
    assert stages == ["ok", "warning", "warning", "final", "final", "expired", "expired"]


async def test_notices_at_14_and_3_days_then_error(core: Core, config: Config) -> None:
    """One expiring event at 14 days, one at 3, then appCredentialsError and the app flagged."""
    await _hooks_on(core)
    await _app(core, expires_in_days=20)
    clock = ManualClock(START_MS)
    watch = CredentialWatch(core.apps, config, clock)
    assert await watch.check() == []
    clock.advance(6 * DAY_MS)
    assert [e.days_left for e in await watch.check()] == [14]
    assert await watch.check() == []  # once per stage
    clock.advance(11 * DAY_MS)
    assert [e.days_left for e in await watch.check()] == [3]
    clock.advance(2 * DAY_MS)
    assert await watch.check() == []  # still within the final stage
    clock.advance(DAY_MS)
    assert [e.stage for e in await watch.check()] == ["expired"]
    events = await _events(core)
    assert [e["event"] for e in events] == [
        "appCredentialsExpiring",
        "appCredentialsExpiring",
        "appCredentialsError",
    ]
    assert [e["data"].get("daysLeft") for e in events] == [14, 3, None]
    assert events[0]["data"]["credential"] == "current" and events[0]["data"]["next"] is False
    app = await core.apps.require("watched")
    assert orjson.loads(app.fields["error"])["error"] == "credential_expired"
    assert "watched-secret" not in orjson.dumps(events).decode()


async def test_dead_current_with_live_next_does_not_flag(core: Core, config: Config) -> None:
    """A dead current credential with a next one reports the error but leaves the app usable."""
    await _hooks_on(core)
    await _app(core, expires_in_days=1, nextClientSecret="watched-next")
    clock = ManualClock(START_MS + 2 * DAY_MS)
    sent = await CredentialWatch(core.apps, config, clock).check()
    assert [e.stage for e in sent] == ["expired"]
    assert "error" not in (await core.apps.require("watched")).fields
    [event] = await _events(core)
    assert event["event"] == "appCredentialsError" and event["data"]["credential"] == "current"


async def test_two_workers_send_each_notice_once(core: Core, config: Config) -> None:
    """Two watches checking at the same moment record one notice between them."""
    await _hooks_on(core)
    await _app(core, expires_in_days=10)
    clock = ManualClock(START_MS)
    watches = [CredentialWatch(core.apps, config, clock) for _ in range(2)]
    sent = await asyncio.gather(*(w.check() for w in watches))
    assert sum(len(s) for s in sent) == 1
    assert len(await _events(core)) == 1


async def test_warning_days_are_configurable(core: Core, config: Config) -> None:
    """TOKENBROKER_CREDENTIAL_WARNING_DAYS=30 warns 30 days ahead."""
    await _app(core, expires_in_days=29)
    wider = dataclasses.replace(config, credential_warning_days=30)
    sent = await CredentialWatch(core.apps, wider, ManualClock(START_MS)).check()
    assert [e.days_left for e in sent] == [29]
    assert await CredentialWatch(core.apps, config, ManualClock(START_MS)).check() == []


async def test_new_expiry_date_starts_over(core: Core, config: Config) -> None:
    """Recording a later expiry date (a renewed secret) sends its notices again in time."""
    await _app(core, expires_in_days=10)
    clock = ManualClock(START_MS)
    watch = CredentialWatch(core.apps, config, clock)
    assert len(await watch.check()) == 1
    app = await core.apps.require("watched")
    later = iso(START_MS + 40 * DAY_MS)
    await core.apps.update(
        app, {"clientSecret": "renewed", "credentialExpires": later}, iso(START_MS)
    )
    assert await watch.check() == []
    clock.advance(27 * DAY_MS)
    assert [e.days_left for e in await watch.check()] == [13]


async def test_seconds_to_expiry_metric(client: Client, core: Core, admin: dict[str, str]) -> None:
    """/metrics has each recorded credential's seconds to expiry, per app and slot."""
    now = core.clock.now_ms()
    body = {
        "id": "metered",
        "provider": "oidc",
        "clientId": "c",
        "tokenUrl": "https://idp.example/token",
        "clientSecret": "s",
        "credentialExpires": iso(now + 10 * DAY_MS),
        "nextClientSecret": "n",
    }
    await core.apps.create(body, iso(now))
    text = await (await client.get("/metrics", headers=admin)).text()
    name = 'tokenbroker_app_credential_expiry_seconds{app="metered",credential="current"}'
    seconds = sample(text, name)
    assert seconds is not None and 10 * 86_400 - HOUR_MS / 1000 < seconds <= 10 * 86_400
    assert sample(text, name.replace("current", "next")) is None  # no date recorded for it
