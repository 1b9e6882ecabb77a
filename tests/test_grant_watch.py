"""Grants with a known deadline: indexed with the record, warned of once per stage."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import ManualClock, SystemClock, iso
from service.config import Config
from service.core import Core
from service.grant_watch import HOUR_MS, WEEK_MS, GrantWatch, stage_of
from tests.support.consent import events

Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]


async def declare_testing(core: Core, app_id: str) -> None:
    """Declare the app a Google app in testing: its grants die 7 days after consent."""
    app = await core.apps.require(app_id)
    await core.apps.update(app, {"publishingStatus": "testing"}, iso(SystemClock().now_ms()))


async def deadline_score(core: Core, account: str) -> float | None:
    """The account's score in its partition's grant deadline index."""
    key = core.keys.grant_deadlines(core.keys.partition_of(account))
    return await core.redis.zscore(key, account)


def test_stages() -> None:
    """Over 48 h ok, then warning, final from 6 h, nothing once the deadline has passed."""
    stages = [stage_of(h * HOUR_MS, 48, 6) for h in (49, 48, 7, 6, 1, 0, -1)]
    assert stages == ["ok", "warning", "warning", "final", "final", "ok", "ok"]


async def test_import_into_a_testing_app_is_indexed_and_delete_removes_it(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str, import_account: Importer
) -> None:
    """The deadline (import + 7 days) is on the record and in the index; DELETE drops both."""
    await declare_testing(core, oidc_app)
    before = SystemClock().now_ms()
    await import_account("doomed")
    after = SystemClock().now_ms()
    account = await core.accounts.require("doomed")
    deadline = account.grant_deadline_ms
    assert deadline is not None and before + WEEK_MS <= deadline <= after + WEEK_MS
    assert account.grant_deadline_from == "publishingStatus:testing"
    assert await deadline_score(core, "doomed") == deadline
    resp = await client.delete("/v1/account/doomed", headers=admin)
    assert resp.status == 200, await resp.text()
    assert await deadline_score(core, "doomed") is None


async def test_warnings_once_per_stage_and_none_for_a_dead_account(
    core: Core, config: Config, oidc_app: str, import_account: Importer
) -> None:
    """One warning in the 48 h window, one final at 6 h; a reauth_required grant gets none."""
    await core.settings.update({"webhooks": "http://127.0.0.1:9/hooks", "webhooksEnabled": True})
    await declare_testing(core, oidc_app)
    await import_account("soon")
    await import_account("dead")
    dead = await core.accounts.require("dead")
    await core.accounts.mark_reauth(
        dead, "", "expired", {"error": "invalid_grant"}, dead.updated_ms or 0
    )
    deadline = (await core.accounts.require("soon")).grant_deadline_ms or 0
    clock = ManualClock(deadline - 50 * HOUR_MS)
    watch = GrantWatch(core.accounts, core.links, config, clock)
    assert await watch.count(WEEK_MS) == 1  # the reauth_required one is not counted
    assert [a.id for a in await watch.dying(WEEK_MS, 1)] == ["soon"]
    assert await watch.check() == []
    clock.advance(3 * HOUR_MS)
    assert [(e.account.id, e.stage, e.hours_left) for e in await watch.check()] == [
        ("soon", "warning", 47)
    ]
    assert await watch.check() == []
    clock.advance(41 * HOUR_MS + 1)
    assert [(e.account.id, e.stage) for e in await watch.check()] == [("soon", "final")]
    clock.advance(HOUR_MS)
    assert await watch.check() == []
    sent = [
        e for e in await events(core.redis, core, "soon") if e["event"] == "authenticationExpiring"
    ]
    assert [e["data"]["stage"] for e in sent] == ["warning", "final"]
    assert {e["data"]["deadline"] for e in sent} == {iso(deadline)}
    assert all(e["account"] == "soon" and e["app"] == oidc_app for e in sent)
    assert (await core.accounts.require("soon")).grant_notice == f"{deadline}:final"
