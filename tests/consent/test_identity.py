"""Who consented, at the real provider: verified email or sub, Microsoft's tid/oid, the pin."""

from __future__ import annotations

from redis.asyncio import Redis

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.consent import (
    Client,
    authorize_as,
    follow,
    make_link,
    open_link,
    start_consent,
)
from tests.support.idp import Idp

MICROSOFT_APP = "ms"


async def consent_as(
    client: Client, headers: dict[str, str], idp: Idp, account: str, sub: str, app: str = "flow"
) -> tuple[int, str]:
    """Run a consent of `account` through the API as `sub`: the callback's status and page."""
    consent_url = await start_consent(client, headers, account=account, oauth2={"provider": app})
    resp = await follow(client, await authorize_as(idp, consent_url, sub))
    return resp.status, await resp.text()


async def microsoft_app(core: Core, idp: Idp) -> str:
    """A microsoft app whose endpoints are the test provider's (overrides are allowed here)."""
    body = {
        "id": MICROSOFT_APP,
        "provider": "outlook",
        "authority": "common",
        "baseScopes": "none",  # the test provider grants the OpenID scopes
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "authorizationUrl": idp.authorization_url,
        "tokenUrl": idp.token_url,
        "userinfoUrl": idp.userinfo_url,
        "jwksUrl": idp.jwks_url,
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    return MICROSOFT_APP


async def test_unverified_email_is_not_the_user(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """An email with email_verified false is not trusted: the user is the provider's sub."""
    flow_idp.set_claims("unverified-1", email="boss@corp.test", email_verified=False)
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "u1", "unverified-1")
    assert status == 200, page
    shown = await (await flow_client.get("/v1/account/u1", headers=flow_admin)).json()
    assert shown["user"] == "unverified-1"
    flow_idp.set_claims("unverified-2", email="boss@corp.test", email_verified=None)
    assert (await consent_as(flow_client, flow_admin, flow_idp, "u2", "unverified-2"))[0] == 200
    shown = await (await flow_client.get("/v1/account/u2", headers=flow_admin)).json()
    assert shown["user"] == "unverified-2"


async def test_expected_user_needs_a_verified_email(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp
) -> None:
    """An expectedUser is checked against the verified identity, not an unverified email."""
    flow_idp.set_claims("unverified-3", email="boss@corp.test", email_verified=False)
    link = await make_link(flow_client, flow_admin, account="boss", expectedUser="boss@corp.test")
    opened = await open_link(flow_client, link)
    callback = await authorize_as(flow_idp, opened.headers["Location"], "unverified-3")
    refused = await follow(flow_client, callback)
    page = await refused.text()
    assert refused.status == 403 and 'id="code">UserMismatch<' in page
    assert (await flow_client.get("/v1/account/boss", headers=flow_admin)).status == 404


async def test_microsoft_identity_pinned_by_tid_and_oid(
    flow_client: Client, flow_admin: dict[str, str], flow_idp: Idp, flow_core: Core, redis: Redis
) -> None:
    """A re-consent with another tid/oid is refused even when the user name is the same."""
    app = await microsoft_app(flow_core, flow_idp)
    name = "alice@contoso.test"
    flow_idp.set_claims("ms-alice", tid="tenant-1", oid="object-1", preferred_username=name)
    flow_idp.set_claims("ms-other", tid="tenant-2", oid="object-9", preferred_username=name)
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "m1", "ms-alice", app)
    assert status == 200, page
    record = await redis.hgetall(flow_core.keys.account("m1"))
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "m1", "ms-other", app)
    assert status == 403 and 'id="code">UserMismatch<' in page, page
    assert await redis.hgetall(flow_core.keys.account("m1")) == record  # nothing changed
    assert record["user"] == name and (record["tid"], record["oid"]) == ("tenant-1", "object-1")
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "m1", "ms-alice", app)
    assert status == 200 and "(existing)" in page, page


async def test_microsoft_without_tid_and_oid_refused(
    flow_client: Client, flow_admin: dict[str, str], flow_idp: Idp, flow_core: Core
) -> None:
    """A Microsoft id_token without tid/oid cannot name the user: 502 IdentityUnavailable."""
    app = await microsoft_app(flow_core, flow_idp)
    flow_idp.set_claims("ms-plain", preferred_username="plain@contoso.test")
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "m2", "ms-plain", app)
    assert status == 502 and 'id="code">IdentityUnavailable<' in page, page
    assert (await flow_client.get("/v1/account/m2", headers=flow_admin)).status == 404


async def test_oidc_account_pinned_to_its_subject(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp, redis: Redis
) -> None:
    """An account consented by one sub cannot be taken over by another user's consent."""
    assert (await consent_as(flow_client, flow_admin, flow_idp, "p1", "pin-a"))[0] == 200
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "p1", "pin-b")
    assert status == 403 and "belongs to another user" in page, page
    shown = await (await flow_client.get("/v1/account/p1", headers=flow_admin)).json()
    assert shown["user"] == "pin-a@example.test"


async def test_expected_user_kept_for_later_consents(
    flow_client: Client, flow_admin: dict[str, str], flow_app: str, flow_idp: Idp, flow_core: Core
) -> None:
    """An expectedUser stays on the account: a later consent without it still enforces it."""
    link = await make_link(
        flow_client, flow_admin, account="kept", expectedUser="kept@example.test"
    )
    opened = await open_link(flow_client, link)
    callback = await authorize_as(flow_idp, opened.headers["Location"], "kept")
    assert (await follow(flow_client, callback)).status == 303
    flow_idp.set_claims("kept", email="someone-else@example.test")  # same sub, other email
    status, page = await consent_as(flow_client, flow_admin, flow_idp, "kept", "kept")
    assert status == 403 and "kept@example.test was expected" in page, page
    shown = await (await flow_client.get("/v1/account/kept", headers=flow_admin)).json()
    assert shown["user"] == "kept@example.test"
