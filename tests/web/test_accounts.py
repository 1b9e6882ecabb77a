"""Account routes: import, list with paging and status, show, force refresh, delete."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.core import Core
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]


async def test_import_new_then_existing(
    client: Client, admin: dict[str, str], import_account: Importer, core: Core, redis: Redis
) -> None:
    """Importing answers state new, then existing; the account is scheduled and indexed."""
    await import_account()
    account = await core.accounts.require("example")
    assert account.status == "active" and account.user == "example@example.test"
    assert await redis.zscore(core.keys.schedule(0), "example") is not None
    minted = await import_account()
    resp = await client.post(
        "/v1/account",
        headers=admin,
        json={
            "account": "example",
            "oauth2": {"provider": "idp", "auth": {"user": "u@x"}, "refreshToken": "r"},
        },
    )
    assert (await resp.json())["state"] == "existing"
    assert minted


async def test_unknown_app_and_bad_id(client: Client, admin: dict[str, str], oidc_app: str) -> None:
    """Import with an unknown app is 404 AppNotFound; a bad id is 400 InvalidAccountId."""
    body = {
        "account": "a",
        "oauth2": {"provider": "nope", "auth": {"user": "u"}, "refreshToken": "r"},
    }
    resp = await client.post("/v1/account", json=body, headers=admin)
    assert (await resp.json())["code"] == "AppNotFound"
    resp = await client.post("/v1/account", json={**body, "account": "-bad"}, headers=admin)
    assert (await resp.json())["code"] == "InvalidAccountId"


async def test_list_and_page(
    client: Client, admin: dict[str, str], import_account: Importer
) -> None:
    """Accounts list by page in id order and filter by status."""
    for name in ("c", "a", "b"):
        await import_account(name)
    body = await (await client.get("/v1/accounts?pageSize=2", headers=admin)).json()
    assert body["total"] == 3 and body["pages"] == 2
    assert [a["account"] for a in body["accounts"]] == ["a", "b"]
    body = await (await client.get("/v1/accounts?page=1&pageSize=2", headers=admin)).json()
    assert [a["account"] for a in body["accounts"]] == ["c"]
    body = await (await client.get("/v1/accounts?status=reauth_required", headers=admin)).json()
    assert body["total"] == 0
    resp = await client.get("/v1/accounts?status=bogus", headers=admin)
    assert resp.status == 400


async def test_show_never_has_tokens(
    client: Client, admin: dict[str, str], import_account: Importer
) -> None:
    """GET /v1/account/{id} shows status and expiry but no token."""
    minted = await import_account()
    resp = await client.get("/v1/account/example", headers=admin)
    text = await resp.text()
    assert resp.status == 200
    assert minted["access_token"] not in text and minted["refresh_token"] not in text
    body = await resp.json()
    assert body["status"] == "active" and body["expires"].endswith("Z")


async def test_force_refresh_and_missing_refresh_token(
    client: Client, admin: dict[str, str], import_account: Importer, idp: Idp, core: Core
) -> None:
    """A forced refresh calls the provider; a response without refresh_token keeps the old one."""
    minted = await import_account()
    idp.fault("no_refresh_token")
    resp = await client.post("/v1/account/example/refresh", headers=admin)
    assert resp.status == 200, await resp.text()
    account = await core.accounts.require("example")
    assert core.accounts.refresh_token(account) == minted["refresh_token"]
    idp.fault("string_expires_in")
    resp = await client.post("/v1/account/example/refresh", headers=admin)
    assert resp.status == 200
    account = await core.accounts.require("example")
    assert core.accounts.refresh_token(account) != minted["refresh_token"]
    assert account.lifetime_ms == 3_600_000
    assert idp.stats()["refresh_requests"] == 2


async def test_delete(
    client: Client, admin: dict[str, str], import_account: Importer, redis: Redis, core: Core
) -> None:
    """Deleting removes every key of the account; a second delete is 404."""
    await import_account()
    resp = await client.delete("/v1/account/example", headers=admin)
    assert (await resp.json())["deleted"] is True
    keys = [k for k in await redis.keys("*") if "example" in k]
    assert keys == []
    assert await redis.zscore(core.keys.schedule(0), "example") is None
    assert (await client.delete("/v1/account/example", headers=admin)).status == 404


async def test_an_import_replaces_the_grant_and_clears_its_identity_pin(
    client: Client, core: Core, redis: Redis, import_account: Importer
) -> None:
    """A re-import is a new grant: a new generation, and the old consent's pin is gone."""
    await import_account("pinned")
    key = core.keys.account("pinned")
    pin = {"sub": "s1", "iss": "https://idp", "tid": "t", "oid": "o", "expectedUser": "a@x"}
    await redis.hset(key, mapping=cast(Any, pin))
    before = await core.accounts.require("pinned")
    await import_account("pinned")
    after = await core.accounts.require("pinned")
    assert after.grant_gen == before.grant_gen + 1
    assert await redis.hmget(key, list(pin)) == [None] * len(pin)
