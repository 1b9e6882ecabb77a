"""Deleting an account: with ?revoke=true its refresh token is revoked at the provider."""

from __future__ import annotations

from redis.asyncio import Redis

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.consent import Client, connect, events
from tests.support.idp import Idp

CLOSED = "http://127.0.0.1:9"  # nothing listens there


async def test_delete_revokes_the_refresh_token(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
    webhooks_on: None,
) -> None:
    """DELETE ?revoke=true revokes at the provider (discovered endpoint): the token is dead."""
    assert (await connect(flow_client, flow_admin, flow_idp, "gone")).status == 200
    refresh_token = flow_core.accounts.refresh_token(await flow_core.accounts.require("gone"))
    resp = await flow_client.delete("/v1/account/gone?revoke=true", headers=flow_admin)
    body = await resp.json()
    assert resp.status == 200 and body == {"account": "gone", "deleted": True, "revoked": True}
    assert flow_idp.stats()["revocations"] == 1
    status, answer = flow_idp.refresh(refresh_token)
    assert status == 400 and answer["error"] == "invalid_grant"
    assert [e["event"] for e in await events(redis, flow_core, "gone")][-1] == "accountDeleted"
    assert [k for k in await redis.keys("*") if str(k).endswith(":gone")] == []


async def _import(client: Client, headers: dict[str, str], app: str, account: str) -> None:
    oauth2 = {"provider": app, "auth": {"user": f"{account}@x.test"}, "refreshToken": "rt-1"}
    resp = await client.post(
        "/v1/account", json={"account": account, "oauth2": oauth2}, headers=headers
    )
    assert resp.status == 200, await resp.text()


async def test_unreachable_revocation_does_not_block_the_delete(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core
) -> None:
    """A revocation endpoint that cannot be reached: deleted, revoked false with the reason."""
    app = {
        "id": "down",
        "provider": "oidc",
        "clientId": "c",
        "clientSecret": "s",
        "tokenUrl": f"{CLOSED}/token",
        "revocationUrl": f"{CLOSED}/revoke",
    }
    await flow_core.apps.create(app, iso(SystemClock().now_ms()))
    await _import(flow_client, flow_admin, "down", "unreachable")
    resp = await flow_client.delete("/v1/account/unreachable?revoke=true", headers=flow_admin)
    body = await resp.json()
    assert resp.status == 200 and body["deleted"] is True
    assert body["revoked"] is False and body["reason"] == "network"
    assert (await flow_client.get("/v1/account/unreachable", headers=flow_admin)).status == 404


async def test_provider_without_revocation(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core
) -> None:
    """Microsoft has no RFC 7009 endpoint: deleted locally, revoked false, reason unsupported."""
    app = {
        "id": "ms",
        "provider": "outlook",
        "clientId": "c",
        "clientSecret": "s",
        "authority": "common",
    }
    await flow_core.apps.create(app, iso(SystemClock().now_ms()))
    await _import(flow_client, flow_admin, "ms", "outlook")
    body = await (
        await flow_client.delete("/v1/account/outlook?revoke=true", headers=flow_admin)
    ).json()
    assert body == {
        "account": "outlook",
        "deleted": True,
        "revoked": False,
        "reason": "unsupported",
    }


async def test_delete_without_revoke_leaves_the_grant(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
) -> None:
    """DELETE without ?revoke= (EmailEngine's default) revokes nothing: the token still works."""
    assert (await connect(flow_client, flow_admin, flow_idp, "kept")).status == 200
    refresh_token = flow_core.accounts.refresh_token(await flow_core.accounts.require("kept"))
    body = await (await flow_client.delete("/v1/account/kept", headers=flow_admin)).json()
    assert body == {"account": "kept", "deleted": True, "revoked": False}
    assert flow_idp.stats()["revocations"] == 0
    status, _ = flow_idp.refresh(refresh_token)
    assert status == 200
