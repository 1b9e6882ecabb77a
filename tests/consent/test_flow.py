"""The whole consent flow with no browser: API, provider login and consent, our callback."""

from __future__ import annotations

import asyncio

import orjson
from redis.asyncio import Redis

from service.clock import ManualClock, SystemClock, iso
from service.consent import code_challenge
from service.core import Core
from tests.support.consent import (
    Client,
    authorize_as,
    base_url,
    connect,
    events,
    follow,
    query_of,
    start_consent,
    userinfo,
)
from tests.support.idp import Idp


async def test_connect_account_end_to_end(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
    webhooks_on: None,
) -> None:
    """API -> consent URL -> login and consent -> callback: a new active account with a token."""
    done_url = f"{base_url(flow_client)}/done?from=test"
    consent_url = await start_consent(
        flow_client, flow_admin, account="alice", oauth2={"redirectUrl": done_url}
    )
    params = query_of(consent_url)
    assert consent_url.startswith(flow_idp.authorization_url + "?")
    assert params["response_type"] == "code" and params["client_id"] == flow_idp.client_id
    assert params["scope"] == "openid email profile mail.read"
    assert params["redirect_uri"] == f"{base_url(flow_client)}/oauth/callback"
    assert params["code_challenge_method"] == "S256" and params["nonce"]
    nonce = flow_core.signer.verify(params["state"])["n"]
    record = orjson.loads(str(await redis.get(flow_core.keys.state(nonce))))
    verifier = flow_core.cipher.decrypt(record["verifier"], f"state:{nonce}:verifier")
    assert params["code_challenge"] == code_challenge(verifier)
    assert 0 < await redis.pttl(flow_core.keys.state(nonce)) <= 600_000

    callback = await authorize_as(flow_idp, consent_url, "alice")
    resp = await follow(flow_client, callback)
    assert resp.status == 303, await resp.text()
    assert resp.headers["Location"] == f"{done_url}&account=alice&state=new"
    assert await redis.exists(flow_core.keys.state(nonce)) == 0

    account = await (await flow_client.get("/v1/account/alice", headers=flow_admin)).json()
    assert account["status"] == "active" and account["user"] == "alice@example.test"
    assert {"openid", "email", "profile", "mail.read"} <= set(account["scopes"])
    await flow_core.settings.update({"enableOAuthTokensApi": True})
    token = await flow_client.get("/v1/account/alice/oauth-token", headers=flow_admin)
    body = await token.json()
    assert token.status == 200 and body["user"] == "alice@example.test"
    status, info = userinfo(flow_idp, body["accessToken"])
    assert status == 200 and info["sub"] == "alice"
    assert [e["event"] for e in await events(redis, flow_core, "alice")] == ["accountAdded"]


async def test_pkce_wrong_verifier_refused_by_the_provider(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
    webhooks_on: None,
) -> None:
    """With another verifier than the challenge's, the provider refuses the code: no account."""
    consent_url = await start_consent(flow_client, flow_admin, account="pkce")
    nonce = flow_core.signer.verify(query_of(consent_url)["state"])["n"]
    key = flow_core.keys.state(nonce)
    record = orjson.loads(str(await redis.get(key)))
    wrong = code_challenge("another verifier") + "-not-the-one-that-was-hashed"
    record["verifier"] = flow_core.cipher.encrypt(wrong, f"state:{nonce}:verifier")
    await redis.set(key, orjson.dumps(record), px=60_000)
    callback = await authorize_as(flow_idp, consent_url, "pkce")
    resp = await follow(flow_client, callback)
    page = await resp.text()
    assert resp.status == 502 and resp.content_type == "text/html", page
    assert 'id="code">CodeExchangeFailed<' in page
    assert query_of(callback)["code"] not in page and wrong not in page
    assert flow_idp.stats()["code_requests"] == 1
    assert (await flow_client.get("/v1/account/pkce", headers=flow_admin)).status == 404


async def test_state_replay_missing_and_forged_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """A used state, no state and a state we did not sign are refused with a page."""
    done = f"{base_url(flow_client)}/done"
    consent_url = await start_consent(
        flow_client, flow_admin, account="replay", oauth2={"redirectUrl": done}
    )
    callback = await authorize_as(flow_idp, consent_url, "replay")
    assert (await follow(flow_client, callback)).status == 303
    again = await follow(flow_client, callback)
    page = await again.text()
    assert again.status == 400 and 'id="code">InvalidState<' in page
    assert 'href="' + done + '?error=InvalidState"' in page
    assert flow_idp.stats()["code_requests"] == 1  # the replayed code never reached it
    missing = await flow_client.get("/oauth/callback?code=x")
    assert missing.status == 400 and 'id="back"' not in await missing.text()
    forged = await flow_client.get("/oauth/callback?code=x&state=eyJhbGciOiJub25lIn0.e30.")
    assert forged.status == 400 and "InvalidState" in await forged.text()


async def test_expired_state_refused(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_clock: ManualClock,
) -> None:
    """A callback later than the state's 10 minutes is refused and the state is used up."""
    consent_url = await start_consent(flow_client, flow_admin, account="slow")
    callback = await authorize_as(flow_idp, consent_url, "slow")
    flow_clock.advance(601_000)
    resp = await follow(flow_client, callback)
    assert resp.status == 400 and "took too long" in await resp.text()
    flow_clock.advance(-601_000)
    assert (await follow(flow_client, callback)).status == 400  # used up all the same
    assert flow_idp.stats()["code_requests"] == 0


async def test_user_denies_consent(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp, redis: Redis
) -> None:
    """The user aborts at the provider: a clear page, a way back with ?error=, no account."""
    done = f"{base_url(flow_client)}/done"
    consent_url = await start_consent(
        flow_client, flow_admin, account="denied", oauth2={"redirectUrl": done}
    )
    callback = await asyncio.to_thread(flow_idp.deny_authorization, consent_url)
    assert query_of(callback)["error"] == "access_denied"
    resp = await follow(flow_client, callback)
    page = await resp.text()
    assert resp.status == 400 and "access was not granted" in page
    assert 'href="' + done + '?error=ConsentDenied"' in page
    assert (await flow_client.get("/v1/account/denied", headers=flow_admin)).status == 404
    assert (await follow(flow_client, callback)).status == 400  # the state is used up


async def test_granted_scopes_narrower_than_asked(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
    webhooks_on: None,
) -> None:
    """A scope the provider does not grant: a page naming it, scopesMissing, and no account."""
    body = {
        "id": "narrow",
        "provider": "oidc",
        "clientId": flow_idp.client_id,
        "clientSecret": flow_idp.client_secret,
        "issuer": flow_idp.issuer,
        "additionalScopes": ["mail.read", "contacts.read"],  # the provider knows no contacts
    }
    await flow_core.apps.create(body, iso(SystemClock().now_ms()))
    consent_url = await start_consent(
        flow_client, flow_admin, account="narrow", oauth2={"provider": "narrow"}
    )
    assert "contacts.read" in query_of(consent_url)["scope"]
    resp = await follow(flow_client, await authorize_as(flow_idp, consent_url, "narrow"))
    page = await resp.text()
    assert resp.status == 403 and "<code>contacts.read</code>" in page
    assert "<code>mail.read</code>" not in page
    assert (await flow_client.get("/v1/account/narrow", headers=flow_admin)).status == 404
    (event,) = await events(redis, flow_core, "narrow")
    assert event["event"] == "scopesMissing" and event["app"] == "narrow"
    assert event["data"]["missingScopes"] == ["contacts.read"]
    assert event["data"]["user"] == "narrow@example.test"


async def test_reauthorization_brings_the_account_back(
    flow_client: Client,
    flow_admin: dict[str, str],
    flow_app: str,
    flow_idp: Idp,
    flow_core: Core,
    redis: Redis,
    webhooks_on: None,
) -> None:
    """After invalid_grant, a new consent makes the account active again: authenticationSuccess."""
    assert (await connect(flow_client, flow_admin, flow_idp, "carol")).status == 200
    flow_idp.fault("error", error="invalid_grant")
    resp = await flow_client.post("/v1/account/carol/refresh", headers=flow_admin)
    assert resp.status == 409
    assert (await flow_core.accounts.require("carol")).status == "reauth_required"
    consent_url = await start_consent(flow_client, flow_admin, account="carol")
    assert query_of(consent_url)["login_hint"] == "carol@example.test"
    resp = await follow(flow_client, await authorize_as(flow_idp, consent_url, "carol"))
    assert resp.status == 200 and 'id="account">carol<' in await resp.text()
    assert "(existing)" in await resp.text()
    account = await flow_core.accounts.require("carol")
    assert account.status == "active" and account.reason is None
    assert await redis.zscore(flow_core.keys.schedule(0), "carol") is not None
    names = [e["event"] for e in await events(redis, flow_core, "carol")]
    assert names == ["accountAdded", "authenticationError", "authenticationSuccess"]
    refreshed = await flow_client.post("/v1/account/carol/refresh", headers=flow_admin)
    assert refreshed.status == 200, await refreshed.text()


async def test_redirect_url_outside_the_allowed_list_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_core: Core
) -> None:
    """A redirectUrl must be on BASE_URL or under an allowedRedirectUrls prefix (same origin)."""
    await flow_core.settings.update({"allowedRedirectUrls": ["https://app.example.com/tb/"]})
    port = base_url(flow_client).rsplit(":", 1)[1]
    refused = [
        "https://evil.example/cb",
        "https://app.example.com.evil.test/tb/cb",
        "https://app.example.com/other",
        "http://app.example.com/tb/cb",
        f"http://127.0.0.1:{port}@evil.test/",
        f"http://127.0.0.1:{int(port) + 1}/",
        "javascript:alert(1)",
    ]
    for url in refused:
        body = {"oauth2": {"provider": flow_app, "authorize": True, "redirectUrl": url}}
        resp = await flow_client.post("/v1/account", json=body, headers=flow_admin)
        assert (await resp.json())["code"] == "RedirectUrlNotAllowed", url
        form = {"app": flow_app, "redirectUrl": url}
        resp = await flow_client.post("/v1/authentication/form", json=form, headers=flow_admin)
        assert resp.status == 400 and (await resp.json())["code"] == "RedirectUrlNotAllowed"
    for url in ("https://app.example.com/tb/cb?x=1", f"{base_url(flow_client)}/anything"):
        body = {"oauth2": {"provider": flow_app, "authorize": True, "redirectUrl": url}}
        resp = await flow_client.post("/v1/account", json=body, headers=flow_admin)
        assert resp.status == 200, (url, await resp.text())
