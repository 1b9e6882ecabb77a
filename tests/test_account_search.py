"""The account search index: prefix matches by id and user, kept by the account scripts."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.account_search import ascii_lower, tld_entry
from service.accounts import AccountWrite
from service.config import Config
from service.core import Core
from service.web.appkeys import CORE
from tests.support.polling import eventually

MakeClient = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]
SEARCH_COMMANDS = ("zrangebylex", "zlexcount", "hgetall")


async def add(core: Core, app: str, account: str, user: str) -> None:
    """Store one account directly through the save script."""
    now = core.clock.now_ms()
    write = AccountWrite(
        app=app, provider="oidc", user=user, access_token="at", refresh_token="rt", scopes=[]
    )
    await core.accounts.save(account, write, now + 3_600_000, now, {})


async def ids(core: Core, prefix: str, page: int = 0, size: int = 50) -> tuple[int, list[str]]:
    """The (total, ids) of one search page."""
    total, found = await core.accounts.find(prefix, page, size)
    return total, [a.id for a in found]


async def search_calls(redis: Redis) -> int:
    """How many search commands the server ran since the stats were reset."""
    stats = await redis.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{c}", {}).get("calls", 0)) for c in SEARCH_COMMANDS)


def test_ascii_lower_matches_lua_string_lower() -> None:
    """Only A-Z is lower-cased, as Lua's string.lower does; other bytes stay."""
    assert ascii_lower("AbC-Ä@X.org") == "abc-Ä@x.org".encode()


async def test_prefix_search_by_id_and_user(core: Core, oidc_app: str) -> None:
    """A prefix of the id, the user or a word of them finds the account, case-insensitively."""
    await add(core, oidc_app, "Alpha-1", "Zed@Example.com")
    await add(core, oidc_app, "beta-2", "alpha.user@example.com")
    await add(core, oidc_app, "gamma-3", "gamma@example.com")
    assert await ids(core, "alpha") == (2, ["Alpha-1", "beta-2"])
    assert await ids(core, "ZED@") == (1, ["Alpha-1"])
    assert await ids(core, "xample") == (0, [])  # not a word's start
    assert await ids(core, "EXAMPLE.c") == (3, ["Alpha-1", "beta-2", "gamma-3"])  # after @
    assert await ids(core, "user@") == (1, ["beta-2"])  # after the dot
    assert await ids(core, "1") == (1, ["Alpha-1"])  # after the dash
    assert await ids(core, "gamma") == (1, ["gamma-3"])  # id and user both match: once


async def test_search_follows_delete_and_reimport(core: Core, oidc_app: str) -> None:
    """Deleted accounts leave the index; a re-import with another user drops the old user."""
    await add(core, oidc_app, "acct-1", "old@example.com")
    account = await core.accounts.require("acct-1")
    await core.accounts.delete(account, core.clock.now_ms())
    assert await ids(core, "old") == (0, []) and await ids(core, "acct") == (0, [])
    await add(core, oidc_app, "acct-1", "old@example.com")
    await add(core, oidc_app, "acct-1", "new@example.com")  # the grant replaced: new user
    assert await ids(core, "old") == (0, [])
    assert await ids(core, "new") == (1, ["acct-1"])


async def test_search_pages_over_partitions(
    make_client: MakeClient, config: Config, oidc_app: str
) -> None:
    """With several partitions the pages are merged in order, with no gap and no repeat."""
    client = await make_client(dataclasses.replace(config, schedule_partitions=4))
    core = client.app[CORE]
    for n in range(23):
        await add(core, oidc_app, f"p-{n:02}", f"user{n:02}@example.com")
    pages = [await ids(core, "P-", page, 5) for page in range(5)]
    assert all(total == 23 for total, _ in pages)
    assert [i for _, found in pages for i in found] == [f"p-{n:02}" for n in range(23)]


async def test_search_cost_does_not_grow_with_accounts(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """The commands one search sends are the same with 10 or 300 accounts: O(log N) each."""
    for n in range(10):
        await add(core, oidc_app, f"few-{n:03}", f"few{n}@example.com")
    await redis.config_resetstat()
    await ids(core, "few-00", 0, 5)
    small = await search_calls(redis)
    for n in range(10, 300):
        await add(core, oidc_app, f"few-{n:03}", f"few{n}@example.com")
    await redis.config_resetstat()
    await ids(core, "few-00", 0, 5)
    assert await search_calls(redis) == small


async def test_backfill_indexes_accounts_stored_before_the_index(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """Accounts without entries are indexed once at start; the marker makes it one-shot."""
    await add(core, oidc_app, "legacy-1", "someone@example.com")
    await redis.delete(core.keys.search(0), core.keys.search_backfilled)
    assert await ids(core, "someone") == (0, [])
    assert await ids(core, "legacy") == (1, ["legacy-1"])  # the id: from the index of all
    assert await core.accounts.search.ensure_backfilled() == 1
    assert await ids(core, "someone") == (1, ["legacy-1"])
    assert await core.accounts.search.ensure_backfilled() is None


async def test_a_web_start_backfills_in_the_background(
    core: Core,
    oidc_app: str,
    redis: Redis,
    make_client: Callable[..., Awaitable[TestClient[web.Request, web.Application]]],
) -> None:
    """A web process starting on un-indexed accounts is ready, indexes them and compacts."""
    for n in range(3):
        await add(core, oidc_app, f"older-{n}", f"past{n}@example.com")
    await redis.delete(core.keys.search(0), core.keys.search_backfilled, core.keys.search_compacted)
    await redis.zadd(core.keys.legacy_active_index(0), {"older-0": 0})  # as older versions kept
    other = await make_client()
    assert (await other.get("/ready")).status == 200

    async def indexed() -> bool:
        return await ids(core, "past") == (3, ["older-0", "older-1", "older-2"])

    await eventually(indexed, 5, "the accounts indexed by the new process")
    assert await redis.exists(core.keys.search_backfilled)

    async def compacted() -> bool:
        return bool(await redis.exists(core.keys.search_compacted))

    await eventually(compacted, 5, "the old entries removed by the new process")
    assert not await redis.exists(core.keys.legacy_active_index(0))


async def test_an_id_without_capitals_has_no_whole_id_entry(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """The index of all accounts answers for such an id; a mixed-case id keeps its entry."""
    await add(core, oidc_app, "lower-1", "x@example.com")
    await add(core, oidc_app, "Upper-1", "y@example.com")
    members = set(await redis.zrange(core.keys.search(0), 0, -1))
    assert "lower-1\x00lower-1" not in members and "1\x00lower-1" in members
    assert "upper-1\x00Upper-1" in members
    assert await ids(core, "LOWER-") == (1, ["lower-1"])
    assert await ids(core, "upper-") == (1, ["Upper-1"])


async def test_compaction_removes_what_older_versions_indexed_twice(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """Start-up drops the old whole-id entries and active index; every search still finds."""
    for n in range(3):
        await add(core, oidc_app, f"old-{n}", f"user{n}@example.com")
    await add(core, oidc_app, "Mixed-9", "mixed@example.com")
    legacy = core.keys.legacy_active_index(0)
    old = {f"old-{n}\x00old-{n}": 0 for n in range(3)}  # what the old scripts wrote
    old |= {f"com\x00old-{n}": 0 for n in range(3)} | {"com\x00Mixed-9": 0}
    await redis.zadd(core.keys.search(0), old)
    await redis.zadd(legacy, {f"old-{n}": 0 for n in range(3)} | {"Mixed-9": 0})
    await redis.delete(core.keys.search_compacted)
    assert await ids(core, "old-") == (3, ["old-0", "old-1", "old-2"])  # duplicates merged
    assert await ids(core, "com") == (4, ["Mixed-9", "old-0", "old-1", "old-2"])
    assert await core.accounts.search.ensure_compacted(batch=2) == 7
    assert not await redis.exists(legacy)
    assert await redis.zmscore(core.keys.search(0), list(old)) == [None] * 7
    assert await ids(core, "com") == (0, [])
    assert await ids(core, "old-") == (3, ["old-0", "old-1", "old-2"])
    assert await ids(core, "mixed") == (1, ["Mixed-9"])
    assert await ids(core, "user") == (3, ["old-0", "old-1", "old-2"])
    assert await core.accounts.search.ensure_compacted() is None


async def test_the_last_label_of_a_mail_domain_is_not_a_word(core: Core, oidc_app: str) -> None:
    """`com` of x@example.com is no search word (nearly every account has it); the rest are."""
    await add(core, oidc_app, "t-1", "ann@example.com")
    await add(core, oidc_app, "t-2", "bob@comcast.net")
    await add(core, oidc_app, "t-3", "cy@mail.example.co.uk")
    await add(core, oidc_app, "t-4", "dee.com-x@example.org")  # before the @: every part
    assert await ids(core, "com") == (2, ["t-4", "t-2"])  # com-x@… sorts before comcast
    assert await ids(core, "net") == (0, []) and await ids(core, "uk") == (0, [])
    assert await ids(core, "co.uk") == (1, ["t-3"])
    assert await ids(core, "example") == (3, ["t-3", "t-1", "t-4"])  # co.uk < com < org
    assert await ids(core, "x@") == (1, ["t-4"])


def test_tld_entry_matches_the_scripts_rule() -> None:
    """The entry the compaction removes is the last label after a dot behind the @ only."""
    assert tld_entry("Ann@Example.COM", "a") == b"com\x00a"
    assert tld_entry("ann@localhost", "a") is None
    assert tld_entry("dee.com@example", "a") is None
    assert tld_entry("x@example.com-1", "a") is None
    assert tld_entry("x@example.", "a") is None
