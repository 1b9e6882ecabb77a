"""Scope lists stored once per partition and referenced by the accounts that share them."""

from __future__ import annotations

import io

import orjson
from redis.asyncio import Redis

from service.account_record import F
from service.accounts import AccountWrite
from service.core import Core
from service.ops.export import Exporter
from service.scope_sets import REF, ScopeSets, ref_of
from service.store.connection import read_hash
from tests.test_account_search import add

SCOPES = ["https://mail.google.com/", "openid", "email", "profile"]


async def save(core: Core, app: str, account_id: str, scopes: list[str]) -> None:
    """Save an account granted `scopes` through the save script."""
    now = core.clock.now_ms()
    write = AccountWrite(
        app=app,
        provider="oidc",
        user=f"{account_id}@example.com",
        refresh_token="rt",
        scopes=scopes,
    )
    await core.accounts.save(account_id, write, now + 3_600_000, now, {})


async def test_accounts_with_the_same_scopes_share_one_entry(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """Each hash holds a short reference; the list is stored once; reads give the list."""
    for n in range(3):
        await save(core, oidc_app, f"s-{n}", SCOPES)
    await save(core, oidc_app, "other", ["openid"])
    ref = await redis.hget(core.keys.account("s-0"), F.SCOPES)
    assert ref == ref_of(orjson.dumps(SCOPES).decode()) and ref.startswith(REF)
    assert await redis.hget(core.keys.account("s-2"), F.SCOPES) == ref
    assert await redis.hlen(core.keys.scope_sets(0)) == 2
    assert (await core.accounts.require("s-1")).scopes == SCOPES
    assert (await core.accounts.require("other")).scopes == ["openid"]
    assert [a.scopes for a in await core.accounts.load(["s-0", "other"])] == [SCOPES, ["openid"]]
    view = await core.token_service.token_view("s-2")
    assert view.scopes == SCOPES


async def test_a_record_with_its_own_list_still_reads(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """A hash written before sharing (the JSON list in the field) reads as it did."""
    await add(core, oidc_app, "old-1", "old@example.com")
    await redis.hset(core.keys.account("old-1"), F.SCOPES, orjson.dumps(SCOPES).decode())
    core.cache.clear()
    assert (await core.accounts.require("old-1")).scopes == SCOPES
    assert (await core.token_service.token_view("old-1")).scopes == SCOPES


async def test_a_process_that_never_saw_a_list_reads_it_from_redis(
    core: Core, oidc_app: str
) -> None:
    """A fresh reader (another process) expands references from the partition's hash."""
    await save(core, oidc_app, "s-1", SCOPES)
    raw = await read_hash(core.redis, core.keys.account("s-1"))
    fresh = ScopeSets(core.redis, core.keys)
    assert orjson.loads((await fresh.expand_one(raw))[F.SCOPES]) == SCOPES
    assert fresh.known == {raw[F.SCOPES]: orjson.dumps(SCOPES).decode()}


async def test_a_refresh_with_new_scopes_shares_them_too(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """store_tokens writes the reference of the scopes the provider granted."""
    await save(core, oidc_app, "r-1", SCOPES)
    account = await core.accounts.require("r-1")
    pairs = core.accounts.fields("r-1", AccountWrite(scopes=["openid"]), core.clock.now_ms())
    await core.accounts.store_tokens(account, "", pairs, core.clock.now_ms() + 60_000, [], 0)
    assert str(await redis.hget(core.keys.account("r-1"), F.SCOPES)).startswith(REF)
    assert (await core.accounts.require("r-1")).scopes == ["openid"]


async def test_an_export_writes_the_list_not_the_reference(core: Core, oidc_app: str) -> None:
    """The backup file holds each account's own list, so it restores anywhere."""
    await save(core, oidc_app, "e-1", SCOPES)
    out = io.BytesIO()
    await Exporter(core.redis, core.keys, core.cipher, core.clock).export(out)
    lines = [orjson.loads(x) for x in out.getvalue().splitlines()]
    record = next(x["record"] for x in lines if x.get("type") == "account")
    assert orjson.loads(record[F.SCOPES]) == SCOPES


async def test_a_lost_list_is_written_again_by_the_next_account(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """Each write stores its list in the same script: a list lost meanwhile comes back."""
    await save(core, oidc_app, "l-1", SCOPES)
    await redis.delete(core.keys.scope_sets(0))  # as a failover that dropped the entry would
    await save(core, oidc_app, "l-2", SCOPES)  # the same process, the same list
    fresh = ScopeSets(core.redis, core.keys)
    raw = await read_hash(core.redis, core.keys.account("l-1"))
    assert orjson.loads((await fresh.expand_one(raw))[F.SCOPES]) == SCOPES
