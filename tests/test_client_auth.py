"""Certificate credentials (private_key_jwt with x5t) for outlook and oidc apps, end to end."""

from __future__ import annotations

import base64
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from service.crypto.credentials import ClientCredential, certificate, certificate_facts
from service.oauth.client import Failure
from service.oauth.client_auth import ASSERTION_TYPE, attach, client_assertion
from tests.support.certs import (
    SelfSigned,
    auth_attempts,
    expire_credential,
    register_certificate,
    self_signed,
)
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
SCOPES = "openid email profile offline_access mail.read"


def _segment(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    return dict(orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))


@pytest.fixture(scope="module")
def cert() -> SelfSigned:
    """One self-signed certificate for the module's apps."""
    return self_signed("tokenbroker-client")


async def _cert_app(core: Core, idp: Idp, cert: SelfSigned, app_id: str = "certs") -> str:
    body = {
        "id": app_id,
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientCertificate": cert.cert_pem,
        "clientCertificateKey": cert.key_pem,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "authorizationUrl": idp.authorization_url,
        "revocationUrl": idp.revocation_url,
    }
    return (await core.apps.create(body, iso(SystemClock().now_ms()))).id


async def _import(client: Client, admin: dict[str, str], idp: Idp, app_id: str) -> None:
    minted = idp.mint("cert-user", SCOPES)
    oauth2 = {"provider": app_id, "auth": {"user": "u@example.test"}}
    oauth2["refreshToken"] = str(minted["refresh_token"])
    resp = await client.post(
        "/v1/account", json={"account": "cert", "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()


def test_assertion_names_the_certificate_and_the_endpoint(cert: SelfSigned) -> None:
    """The assertion carries x5t and x5t#S256 of the certificate; aud is the endpoint called."""
    credential = ClientCredential("current", certificate=certificate(cert.cert_pem, cert.key_pem))
    form = attach("cid", credential, {"grant_type": "refresh_token"}, "https://idp.test/token")
    assert form["client_assertion_type"] == ASSERTION_TYPE and "client_secret" not in form
    header, claims = _segment(form["client_assertion"], 0), _segment(form["client_assertion"], 1)
    facts = certificate_facts(cert.cert_pem)
    assert header["x5t"] == facts.x5t and header["x5t#S256"] == facts.x5t_s256
    assert header["alg"] == "RS256"
    assert claims["iss"] == claims["sub"] == "cid" and claims["aud"] == "https://idp.test/token"
    assert claims["exp"] - claims["iat"] == 300 and claims["jti"]


async def test_certificate_app_refreshes_with_private_key_jwt(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, cert: SelfSigned
) -> None:
    """An oidc app holding only a certificate refreshes; the provider checked its thumbprint."""
    register_certificate(idp, "cert", cert.cert_pem)
    app_id = await _cert_app(core, idp, cert)
    await _import(client, admin, idp, app_id)
    resp = await client.post("/v1/account/cert/refresh", headers=admin)
    assert resp.status == 200, await resp.text()
    attempts = auth_attempts(idp)
    assert [(a["method"], a["name"], a["ok"]) for a in attempts] == [("certificate", "cert", True)]
    shown = await (await client.get(f"/v1/oauth2/{app_id}", headers=admin)).json()
    assert shown["credentials"]["current"]["type"] == "certificate"
    assert shown["credentials"]["current"]["x5t"] == certificate_facts(cert.cert_pem).x5t
    assert "BEGIN" not in orjson.dumps(shown).decode()  # neither key nor certificate shown


async def test_forged_assertion_is_an_app_error(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, redis: Any, cert: SelfSigned
) -> None:
    """Signing with another key under the registered thumbprint: refused, app flagged."""
    register_certificate(idp, "cert", cert.cert_pem)
    app_id = await _cert_app(core, idp, cert)
    await _import(client, admin, idp, app_id)
    forger = self_signed("forger")
    sealed = core.cipher.encrypt(forger.key_pem, f"app:{app_id}:clientCertificateKey")
    await redis.hset(core.keys.app(app_id), "clientCertificateKey", sealed)
    core.cache.clear()
    resp = await client.post("/v1/account/cert/refresh", headers=admin)
    body = await resp.json()
    assert resp.status == 503 and body["code"] == "AppCredentialsError", body
    app = await core.apps.require(app_id)
    error = orjson.loads(app.fields["error"])
    assert error["reason"] == "appCredentials" and "AADSTS700027" in error["error_description"]
    assert (await core.accounts.require("cert")).status == "active"  # the account is kept


async def test_wrong_audience_is_refused_by_the_provider(idp: Idp, cert: SelfSigned) -> None:
    """An assertion made for another endpoint is refused: invalid_client, AADSTS700027."""
    register_certificate(idp, "cert", cert.cert_pem)
    made = certificate(cert.cert_pem, cert.key_pem)
    form = {
        "grant_type": "refresh_token",
        "refresh_token": str(idp.mint("aud-user", SCOPES)["refresh_token"]),
        "client_id": idp.client_id,
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": client_assertion(idp.client_id, made, "https://elsewhere.test/token"),
    }
    async with aiohttp.ClientSession() as http, http.post(idp.token_url, data=form) as resp:
        body = await resp.json()
    assert resp.status == 401 and body["error"] == "invalid_client"
    assert "AADSTS700027" in body["error_description"]


async def test_expired_certificate_is_refused(core: Core, idp: Idp, cert: SelfSigned) -> None:
    """A certificate the provider no longer accepts gives an app failure, never a grant one."""
    register_certificate(idp, "cert", cert.cert_pem)
    expire_credential(idp, "cert")
    app = await core.apps.require(await _cert_app(core, idp, cert))
    refresh_token = str(idp.mint("gone-user", SCOPES)["refresh_token"])
    result = await core.oauth.refresh(app, core.apps.credential(app), refresh_token)
    assert isinstance(result, Failure) and result.kind == "app"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"provider": "gmail", "clientId": "g"}, "clientCertificate"),
        ({"clientCertificate": "not a certificate"}, "clientCertificate"),
        ({"clientCertificateKey": "-----BEGIN PRIVATE KEY-----\nAAAA\n"}, "clientCertificateKey"),
    ],
)
async def test_bad_certificate_input_is_refused(
    client: Client, admin: dict[str, str], cert: SelfSigned, change: dict[str, str], field: str
) -> None:
    """Certificates for gmail apps, non-PEM certificates and broken keys: 400 naming the field."""
    body = {
        "provider": "oidc",
        "clientId": "c",
        "tokenUrl": "https://idp.example/token",
        "clientCertificate": cert.cert_pem,
        "clientCertificateKey": cert.key_pem,
        **change,
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    answer = await resp.json()
    assert resp.status == 400 and answer["details"]["field"] == field, answer


async def test_key_of_another_certificate_is_refused(
    client: Client, admin: dict[str, str], cert: SelfSigned
) -> None:
    """A key that does not belong to the certificate is refused before anything is stored."""
    body = {
        "provider": "outlook",
        "authority": "organizations",
        "clientId": "c",
        "clientCertificate": cert.cert_pem,
        "clientCertificateKey": self_signed("other").key_pem,
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 400, await resp.text()
    answer = await resp.json()
    assert "does not belong" in answer["message"], answer


async def test_outlook_app_with_certificate(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, cert: SelfSigned
) -> None:
    """An outlook app (its token URL pointed at the test provider) refreshes with a certificate."""
    register_certificate(idp, "cert", cert.cert_pem)
    body = {
        "id": "ms",
        "provider": "outlook",
        "authority": "organizations",
        "clientId": idp.client_id,
        "clientCertificate": cert.cert_pem,
        "clientCertificateKey": cert.key_pem,
        "tokenUrl": idp.token_url,
    }
    resp = await client.post("/v1/oauth2", json=body, headers=admin)
    assert resp.status == 200, await resp.text()
    await _import(client, admin, idp, "ms")
    resp = await client.post("/v1/account/cert/refresh", headers=admin)
    assert resp.status == 200, await resp.text()
    assert [a["method"] for a in auth_attempts(idp)] == ["certificate"]
