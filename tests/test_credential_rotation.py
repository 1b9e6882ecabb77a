"""Rotation without downtime: a current and a next credential, retry on refusal, promotion."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.certs import (
    auth_attempts,
    expire_credential,
    register_certificate,
    register_secret,
    self_signed,
)
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
SCOPES = "openid email profile offline_access mail.read"
NEXT_SECRET = "tokenbroker-test-next-secret"


async def _app(core: Core, idp: Idp, **credentials: str) -> str:
    body = {
        "id": "rot",
        "provider": "oidc",
        "clientId": idp.client_id,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "authorizationUrl": idp.authorization_url,
        "revocationUrl": idp.revocation_url,
        **credentials,
    }
    return (await core.apps.create(body, iso(SystemClock().now_ms()))).id


async def _accounts(client: Client, admin: dict[str, str], idp: Idp, count: int) -> list[str]:
    names = []
    for n in range(count):
        minted = idp.mint(f"rot-user-{n}", SCOPES)
        oauth2 = {"provider": "rot", "auth": {"user": f"r{n}@example.test"}}
        oauth2["refreshToken"] = str(minted["refresh_token"])
        body = {"account": f"rot{n}", "oauth2": oauth2}
        resp = await client.post("/v1/account", json=body, headers=admin)
        assert resp.status == 200, await resp.text()
        names.append(f"rot{n}")
    return names


async def _refresh(client: Client, admin: dict[str, str], account: str) -> Any:
    resp = await client.post(f"/v1/account/{account}/refresh", headers=admin)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_expired_current_secret_loses_no_refresh(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """With the current secret expired and a next one set, every refresh succeeds."""
    register_secret(idp, "next", NEXT_SECRET)
    await _app(core, idp, clientSecret=idp.client_secret, nextClientSecret=NEXT_SECRET)
    accounts = await _accounts(client, admin, idp, 5)
    expire_credential(idp, "default")
    for account in accounts:
        await _refresh(client, admin, account)
        assert (await core.accounts.require(account)).status == "active"
    app = await core.apps.require("rot")
    assert "error" not in app.fields
    assert app.fields["credentialInUse"] == "next"
    tried = [(a["name"], a["ok"]) for a in auth_attempts(idp)]
    # the first refresh found the current secret refused; the others went to the next first
    assert tried == [("default", False), *[("next", True)] * len(accounts)]


async def test_promote_makes_next_current(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """One call promotes the next secret; refreshes go on; a second call is 409."""
    register_secret(idp, "next", NEXT_SECRET)
    await _app(
        core,
        idp,
        clientSecret=idp.client_secret,
        nextClientSecret=NEXT_SECRET,
        nextCredentialExpires="2030-01-01T00:00:00Z",
    )
    [account] = await _accounts(client, admin, idp, 1)
    resp = await client.post("/v1/oauth2/rot/credentials/promote", headers=admin)
    body = await resp.json()
    assert resp.status == 200, body
    assert body["credentials"]["next"] is None
    assert body["credentials"]["current"] == {
        "type": "secret",
        "expires": "2030-01-01T00:00:00.000Z",
    }
    app = await core.apps.require("rot")
    assert core.apps.client_secret(app) == NEXT_SECRET
    expire_credential(idp, "default")
    await _refresh(client, admin, account)
    assert [(a["name"], a["ok"]) for a in auth_attempts(idp)] == [("next", True)]
    again = await client.post("/v1/oauth2/rot/credentials/promote", headers=admin)
    assert again.status == 409 and (await again.json())["code"] == "NoNextCredential"


async def test_secret_to_certificate_migration(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A next certificate takes over when the current secret is expired, then is promoted."""
    cert = self_signed("next-cert")
    register_certificate(idp, "cert", cert.cert_pem)
    await _app(
        core,
        idp,
        clientSecret=idp.client_secret,
        nextClientCertificate=cert.cert_pem,
        nextClientCertificateKey=cert.key_pem,
    )
    [account] = await _accounts(client, admin, idp, 1)
    expire_credential(idp, "default")
    await _refresh(client, admin, account)
    assert [(a["name"], a["ok"]) for a in auth_attempts(idp)] == [
        ("default", False),
        ("cert", True),
    ]
    resp = await client.post("/v1/oauth2/rot/credentials/promote", headers=admin)
    shown = (await resp.json())["credentials"]
    assert shown["current"]["type"] == "certificate" and shown["inUse"] == "current"
    app = await core.apps.require("rot")
    assert app.encrypted_secret is None and "clientCertificateKey" in app.encrypted
    await _refresh(client, admin, account)


async def test_both_refused_is_an_app_error(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """When neither credential works the refresh fails as an app error, after one try each."""
    register_secret(idp, "next", NEXT_SECRET)
    await _app(core, idp, clientSecret=idp.client_secret, nextClientSecret=NEXT_SECRET)
    [account] = await _accounts(client, admin, idp, 1)
    expire_credential(idp, "default")
    expire_credential(idp, "next")
    resp = await client.post(f"/v1/account/{account}/refresh", headers=admin)
    assert resp.status == 503 and (await resp.json())["code"] == "AppCredentialsError"
    assert len(auth_attempts(idp)) == 2
    app = await core.apps.require("rot")
    assert orjson.loads(app.fields["error"])["error"] == "invalid_client"
    assert (await core.accounts.require(account)).status == "active"


async def test_next_secret_is_write_only_and_removable(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """The next secret is never shown; setting it to null empties the next slot."""
    await _app(core, idp, clientSecret=idp.client_secret, nextClientSecret=NEXT_SECRET)
    shown = await (await client.get("/v1/oauth2/rot", headers=admin)).text()
    assert NEXT_SECRET not in shown and '"next":{"type":"secret"' in shown.replace(" ", "")
    resp = await client.put("/v1/oauth2/rot", json={"nextClientSecret": None}, headers=admin)
    assert resp.status == 200, await resp.text()
    app = await core.apps.require("rot")
    assert "nextClientSecret" not in app.encrypted and core.apps.credential(app) is not None
