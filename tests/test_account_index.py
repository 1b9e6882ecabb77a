"""Accounts by status: active derived as all minus the other statuses, paged and counted."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.config import Config
from service.core import Core
from service.web.appkeys import CORE
from tests.test_account_search import add

MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


async def mark(core: Core, *account_ids: str) -> None:
    """Set these accounts to reauth_required through the mark_reauth script."""
    for account_id in account_ids:
        account = await core.accounts.require(account_id)
        await core.accounts.mark_reauth(account, "", "test", {}, core.clock.now_ms())


async def test_active_pages_skip_the_other_statuses_over_partitions(
    make_client: MakeClient, config: Config, oidc_app: str, redis: Redis
) -> None:
    """Pages of active accounts (4 partitions) hold every active id once, in id order."""
    client = await make_client(dataclasses.replace(config, schedule_partitions=4))
    core = client.app[CORE]
    every = [f"a-{n:02}" for n in range(30)]
    for account_id in every:
        await add(core, oidc_app, account_id, f"{account_id}@example.com")
    dead = every[::3]
    await mark(core, *dead)
    active = [i for i in every if i not in dead]
    pages = [await core.accounts.index.page(page, 7, "active") for page in range(4)]
    assert all(total == len(active) for total, _ in pages)
    assert [i for _, ids in pages for i in ids] == active
    assert await core.accounts.index.page(0, 100, "reauth_required") == (len(dead), dead)
    assert await core.accounts.index.page(1, 25, "all") == (30, every[25:])
    assert await core.accounts.count_by_status() == {"active": 20, "reauth_required": 10}
    assert not await redis.keys("*idx:active*")  # no index of its own


async def test_a_long_run_of_other_statuses_before_the_page(core: Core, oidc_app: str) -> None:
    """Active ids after many reauth_required ones are still found (the read goes on)."""
    for n in range(40):
        await add(core, oidc_app, f"b-{n:02}", f"b{n}@example.com")
    await mark(core, *(f"b-{n:02}" for n in range(35)))
    total, ids = await core.accounts.index.page(0, 3, "active")
    assert (total, ids) == (5, ["b-35", "b-36", "b-37"])
    assert await core.accounts.index.page(1, 3, "active") == (5, ["b-38", "b-39"])


async def test_status_filter_of_a_list_of_ids(core: Core, oidc_app: str) -> None:
    """with_status keeps the ids of that status, in their order ("all" keeps every one)."""
    for account_id in ("c-1", "c-2", "c-3"):
        await add(core, oidc_app, account_id, f"{account_id}@example.com")
    await mark(core, "c-2")
    ids = ["c-3", "c-2", "c-1"]
    assert await core.accounts.index.with_status(ids, "active") == ["c-3", "c-1"]
    assert await core.accounts.index.with_status(ids, "reauth_required") == ["c-2"]
    assert await core.accounts.index.with_status(ids, "all") == ids
    total, found = await core.accounts.find("c-", 0, 10, "active")
    assert (total, [a.id for a in found]) == (2, ["c-1", "c-3"])


async def test_a_reimport_makes_the_account_active_again(core: Core, oidc_app: str) -> None:
    """Saving a new grant takes the account out of reauth_required, so it counts as active."""
    await add(core, oidc_app, "d-1", "d@example.com")
    await mark(core, "d-1")
    assert await core.accounts.count_by_status() == {"active": 0, "reauth_required": 1}
    await add(core, oidc_app, "d-1", "d@example.com")
    assert await core.accounts.count_by_status() == {"active": 1, "reauth_required": 0}
    assert await core.accounts.index.page(0, 10, "active") == (1, ["d-1"])
