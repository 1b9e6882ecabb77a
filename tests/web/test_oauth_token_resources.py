"""The token endpoint's per-resource (Microsoft) and down-scoped tokens, against the provider."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]
OUTLOOK = "https://outlook.office.com"
GRAPH = "https://graph.microsoft.com"
CONSENTED = f"{OUTLOOK}/IMAP.AccessAsUser.All {OUTLOOK}/SMTP.Send {GRAPH}/Mail.Read"
URL = "/v1/account/ms-user/oauth-token"


@pytest.fixture
async def outlook_account(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, enabled: None
) -> dict[str, object]:
    """An outlook app at the test provider (IMAP preset + Graph Mail.Read) and one account."""
    body = {
        "id": "ms",
        "provider": "outlook",
        "authority": "organizations",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "tokenUrl": idp.token_url,
        "baseScopes": "imap",
        "additionalScopes": [f"{GRAPH}/Mail.Read"],
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    minted = idp.mint("ms-user", "openid email offline_access", resource_scopes=CONSENTED)
    oauth2 = {
        "provider": "ms",
        "auth": {"user": "ms-user@example.test"},
        "refreshToken": minted["refresh_token"],
        "accessToken": minted["access_token"],
        "expires": iso(SystemClock().now_ms() + 3_600_000),
    }
    resp = await client.post(
        "/v1/account", json={"account": "ms-user", "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    return minted


async def _token(client: Client, headers: dict[str, str], query: str) -> dict[str, Any]:
    resp = await client.get(f"{URL}?{query}", headers=headers)
    body: dict[str, Any] = await resp.json()
    assert resp.status == 200, body
    return body


async def _stored_refresh(core: Core) -> str:
    return core.accounts.refresh_token(await core.accounts.require("ms-user"))


async def test_outlook_and_graph_tokens_have_their_audiences_and_are_cached_apart(
    client: Client, admin: dict[str, str], idp: Idp, outlook_account: dict[str, object]
) -> None:
    """Outlook and Graph tokens differ in audience, are cached apart; the default is as before."""
    outlook = await _token(client, admin, "resource=outlook")
    graph = await _token(client, admin, "resource=graph")
    assert outlook["cached"] is False and graph["cached"] is False
    assert (outlook["resource"], graph["resource"]) == ("outlook", "graph")
    assert idp.audience(outlook["accessToken"])[0] == OUTLOOK
    assert idp.audience(graph["accessToken"])[0] == GRAPH
    assert outlook["registeredScopes"] == [
        f"{OUTLOOK}/IMAP.AccessAsUser.All",
        f"{OUTLOOK}/SMTP.Send",
    ]
    assert graph["registeredScopes"] == ["Mail.Read"]
    again = await _token(client, admin, "resource=outlook")
    assert again["cached"] is True and again["accessToken"] == outlook["accessToken"]
    by_scopes = await _token(client, admin, f"scopes={GRAPH}/Mail.Read")
    assert by_scopes["cached"] is True and by_scopes["accessToken"] == graph["accessToken"]
    default = await _token(client, admin, "minValidity=60")
    assert default["accessToken"] == outlook_account["access_token"] and "resource" not in default
    assert idp.stats()["refresh_requests"] == 2


async def test_a_rotation_through_graph_is_what_the_next_outlook_refresh_sends(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """A Graph refresh rotates the one refresh token; Outlook's then presents the new one."""
    await _token(client, admin, "resource=graph")
    after_graph = await _stored_refresh(core)
    assert after_graph != outlook_account["refresh_token"]
    assert not idp.active(str(outlook_account["refresh_token"])).active
    await _token(client, admin, "resource=outlook")
    after_outlook = await _stored_refresh(core)
    assert after_outlook != after_graph
    assert idp.stats()["refresh_replayed"] == 0  # the provider saw no stale refresh token
    state = idp.active(after_outlook)
    assert state.active and state.active_in_grant == 1
    resp = await client.post("/v1/account/ms-user/refresh", headers=admin)
    assert resp.status == 200, await resp.text()  # the default refresh uses the latest too
    assert idp.stats()["refresh_replayed"] == 0


async def test_concurrent_requests_for_two_resources_lose_no_rotation(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """Outlook, Graph and forced default refreshes at once take turns: no rotation is lost."""
    idp.delay(50, 150, 30_000)
    gets = [client.get(f"{URL}?resource={r}", headers=admin) for r in ("outlook", "graph") * 3]
    forced = [client.post("/v1/account/ms-user/refresh", headers=admin) for _ in range(2)]
    answers = await asyncio.gather(*gets, *forced)
    idp.clear_delay()
    for resp in answers:
        assert resp.status == 200, await resp.text()
    stats = idp.stats()
    assert stats["refresh_replayed"] == 0 and stats["refresh_ok"] >= 2
    state = idp.active(await _stored_refresh(core))
    assert state.active and state.active_in_grant == 1


async def test_an_api_token_limited_to_outlook_is_refused_graph(
    client: Client, core: Core, outlook_account: dict[str, object]
) -> None:
    """A token limited to outlook gets outlook; graph and the default answer are 403."""
    token, meta = await core.tokens.create(
        ["oauth-tokens"], None, "outlook only", None, SystemClock().now_ms(), ["outlook"]
    )
    headers = {"Authorization": f"Bearer {token}"}
    assert meta.public()["resources"] == ["outlook"]
    assert (await _token(client, headers, "resource=outlook"))["resource"] == "outlook"
    by_uri, _ = await core.tokens.create(
        ["oauth-tokens"], None, "graph by URI", None, SystemClock().now_ms(), [GRAPH]
    )
    graph = await _token(client, {"Authorization": f"Bearer {by_uri}"}, "resource=graph")
    assert graph["resource"] == "graph"  # a limit by audience URI covers its name
    for query in ("resource=graph", f"scopes={GRAPH}/Mail.Read", "minValidity=60"):
        resp = await client.get(f"{URL}?{query}", headers=headers)
        body = await resp.json()
        assert resp.status == 403 and body["code"] == "ResourceNotAllowed", (query, body)


async def test_limited_tokens_are_created_over_the_api(
    client: Client, admin: dict[str, str]
) -> None:
    """POST /v1/tokens takes resources (listed with the token); a bad name is 400."""
    body = {"scopes": ["oauth-tokens"], "resources": ["graph", "api://my-api"]}
    resp = await client.post("/v1/tokens", json=body, headers=admin)
    created = await resp.json()
    assert resp.status == 200, created
    resp = await client.get(f"/v1/tokens/{created['id']}", headers=admin)
    assert (await resp.json())["resources"] == ["graph", "api://my-api"]
    resp = await client.post(
        "/v1/tokens", json={"scopes": ["oauth-tokens"], "resources": ["sharepoint"]}, headers=admin
    )
    assert resp.status == 400 and (await resp.json())["details"]["field"] == "resources"


async def test_bad_resources_and_scopes_are_400(
    client: Client, admin: dict[str, str], idp: Idp, outlook_account: dict[str, object]
) -> None:
    """An unknown resource, an unconsented scope or two resources' scopes: 400, no provider call."""
    cases = {
        "resource=sharepoint": "InvalidResource",
        "resource=": "InvalidResource",
        f"scopes={GRAPH}/Calendars.Read": "ScopeNotConsented",
        "scopes=": "ScopeNotConsented",
        f"scopes={OUTLOOK}/SMTP.Send,{GRAPH}/Mail.Read": "MixedResources",
        f"resource=graph&scopes={OUTLOOK}/SMTP.Send": "MixedResources",
    }
    for query, code in cases.items():
        resp = await client.get(f"{URL}?{query}", headers=admin)
        body = await resp.json()
        assert resp.status == 400 and body["code"] == code, (query, body)
    assert idp.stats()["refresh_requests"] == 0


async def test_a_resource_refused_by_the_provider_leaves_the_account_alive(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """AADSTS65001 for an unconsented resource is a 409 for it; the account stays active."""
    resp = await client.get(f"{URL}?resource=https://api.example", headers=admin)
    body = await resp.json()
    assert resp.status == 409 and body["code"] == "ReauthRequired", body
    assert body["details"]["error"] == "invalid_grant" and body["details"]["resource"] == (
        "https://api.example"
    )
    assert "65001" in body["details"]["error_description"]
    account = await core.accounts.require("ms-user")
    assert account.status == "active" and account.last_error is None
    assert (await _token(client, admin, "resource=graph"))["resource"] == "graph"


async def test_invalid_grant_on_the_grant_marks_the_account(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """invalid_grant for the grant itself (checked by the account's refresh) needs re-consent."""
    expired: dict[str, object] = {
        "kind": "error",
        "error": "invalid_grant",
        "error_description": "AADSTS70008: The refresh token has expired due to inactivity.",
        "error_codes": [70008],
    }
    idp.faults([expired, expired])
    resp = await client.get(f"{URL}?resource=graph", headers=admin)
    body = await resp.json()
    assert resp.status == 409 and body["code"] == "ReauthRequired", body
    account = await core.accounts.require("ms-user")
    assert account.status == "reauth_required" and account.reason == "expired"
    assert idp.stats()["refresh_requests"] == 2


async def test_a_transient_refusal_of_the_resource_check_keeps_the_grant(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """invalid_grant for a resource while the grant works: the account refresh proves it alive."""
    idp.fault("error", error="invalid_grant", error_description="AADSTS70000: bad token")
    body = await _token(client, admin, "resource=graph")
    assert body["resource"] == "graph" and body["cached"] is False
    account = await core.accounts.require("ms-user")
    assert account.status == "active"
    assert idp.stats()["refresh_requests"] == 3  # refused, the account's refresh, again


async def test_a_resource_refused_again_after_the_check_is_the_resources_refusal(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """invalid_grant for the resource, the account's refresh fine, invalid_grant again: 409."""
    refused: dict[str, object] = {"kind": "error", "error": "invalid_grant"}
    idp.faults([refused, {"kind": "delay_ms", "ms": 0}, refused])
    resp = await client.get(f"{URL}?resource=graph", headers=admin)
    body = await resp.json()
    assert resp.status == 409 and body["details"]["resource"] == "graph", body
    account = await core.accounts.require("ms-user")
    assert account.status == "active" and idp.active(core.accounts.refresh_token(account)).active
    assert idp.stats()["refresh_requests"] == 3


async def test_per_resource_tokens_are_sealed_and_go_with_the_account(
    client: Client,
    admin: dict[str, str],
    core: Core,
    outlook_account: dict[str, object],
) -> None:
    """Stored encrypted; deleting the account leaves no key of it (SCAN)."""
    outlook = await _token(client, admin, "resource=outlook")
    key = core.keys.account_resources("ms-user")
    stored = await core.redis.hgetall(key)
    assert len(stored) == 1
    assert outlook["accessToken"] not in " ".join(map(str, stored.values()))
    assert 0 < await core.redis.pttl(key) <= 3_600_000 + 5_000
    resp = await client.delete("/v1/account/ms-user", headers=admin)
    assert resp.status == 200, await resp.text()
    left = [k async for k in core.redis.scan_iter(match="*ms-user*")]
    assert left == []


async def test_a_new_consent_drops_the_per_resource_tokens(
    client: Client,
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    outlook_account: dict[str, object],
) -> None:
    """Re-importing the account's grant removes the tokens of the grant it replaces."""
    await _token(client, admin, "resource=outlook")
    minted = idp.mint("ms-user", "openid email offline_access", resource_scopes=CONSENTED)
    oauth2 = {"provider": "ms", "auth": {"user": "ms-user@example.test"}}
    oauth2["refreshToken"] = str(minted["refresh_token"])
    resp = await client.post(
        "/v1/account", json={"account": "ms-user", "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    assert not await core.redis.exists(core.keys.account_resources("ms-user"))
    assert (await _token(client, admin, "resource=outlook"))["cached"] is False


async def test_oidc_scopes_yield_a_down_scoped_token(
    client: Client, admin: dict[str, str], import_account: Importer, enabled: None, idp: Idp
) -> None:
    """An oidc account's `scopes` subset is a narrower token; resources are Microsoft's."""
    await import_account()
    url = "/v1/account/example/oauth-token"
    resp = await client.get(f"{url}?scopes=openid%20mail.read", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert sorted(body["registeredScopes"]) == ["mail.read", "openid"]
    assert body["resource"] == "default" and body["cached"] is False
    for query, code in (
        ("scopes=calendar.read", "ScopeNotConsented"),
        ("resource=graph", "InvalidResource"),
    ):
        resp = await client.get(f"{url}?{query}", headers=admin)
        assert resp.status == 400 and (await resp.json())["code"] == code


async def test_a_national_cloud_asks_its_own_hosts(
    client: Client, admin: dict[str, str], idp: Idp, enabled: None
) -> None:
    """A gcc-high app's graph and outlook tokens are for the US Government hosts."""
    us_graph, us_outlook = "https://graph.microsoft.us", "https://outlook.office365.us"
    body = {
        "id": "ms-us",
        "provider": "outlook",
        "cloud": "gcc-high",
        "authority": "organizations",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "tokenUrl": idp.token_url,
        "additionalScopes": [f"{us_graph}/Mail.Read"],
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    consented = f"{us_outlook}/IMAP.AccessAsUser.All {us_outlook}/SMTP.Send {us_graph}/Mail.Read"
    minted = idp.mint("us-user", "openid email offline_access", resource_scopes=consented)
    oauth2 = {"provider": "ms-us", "auth": {"user": "us@example.test"}}
    oauth2["refreshToken"] = str(minted["refresh_token"])
    resp = await client.post("/v1/account", json={"account": "us", "oauth2": oauth2}, headers=admin)
    assert resp.status == 200, await resp.text()
    for name, audience in (("graph", us_graph), ("outlook", us_outlook)):
        resp = await client.get(f"/v1/account/us/oauth-token?resource={name}", headers=admin)
        token = await resp.json()
        assert resp.status == 200, token
        assert idp.audience(token["accessToken"])[0] == audience
