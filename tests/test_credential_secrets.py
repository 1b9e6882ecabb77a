"""Client secrets, certificate keys and signed assertions never appear in plaintext.

The flow: an oidc app with a current secret and a next certificate, refreshes through a
refusal of the secret (so the certificate's assertions are sent), a promotion, and the
watch's notices. Then every key of Redis, the captured log and the API's answers are
scanned for each secret, the private key and every assertion sent (raw and base64).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service import app_credentials
from service.clock import ManualClock, SystemClock, iso
from service.config import Config
from service.core import Core
from service.credential_watch import DAY_MS, CredentialWatch
from service.crypto.rotation import KeyRotation
from service.sealed_records import SealedRecords
from tests.support.certs import (
    auth_attempts,
    expire_credential,
    register_certificate,
    register_secret,
    self_signed,
)
from tests.support.idp import Idp
from tests.support.logs import Lines, logged_lines
from tests.test_keyrotation import NEW, NEW_ONLY
from tests.test_secrets_at_rest import dump_redis

Client = TestClient[web.Request, web.Application]
SCOPES = "openid email profile offline_access mail.read"
NEXT_SECRET = "rotation-next-secret-0123456789"


@pytest.fixture
def captured_log() -> Iterator[Lines]:
    """Our and the stdlib's log lines, as JSON, for this test."""
    with logged_lines() as lines:
        yield lines


def _forms(values: set[str]) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for value in values:
        found[value] = value.encode()
        found[f"b64:{value[:12]}"] = base64.b64encode(value.encode())
    return found


def _key_body(pem: str) -> str:
    """The longest base64 line of a PEM key (what a leak would show)."""
    return max(pem.splitlines(), key=len)


async def test_no_credential_in_plaintext(
    captured_log: Lines,
    client: Client,
    admin: dict[str, str],
    core: Core,
    config: Config,
    idp: Idp,
) -> None:
    """Redis, the log and the API answers hold no secret, key or assertion in plaintext."""
    await core.settings.update({"webhooksEnabled": True, "webhooks": "https://hooks.example.com/x"})
    cert = self_signed("scan-cert")
    register_certificate(idp, "cert", cert.cert_pem)
    register_secret(idp, "next", NEXT_SECRET)
    soon = iso(SystemClock().now_ms() + 2 * DAY_MS)
    body = {
        "id": "scan",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "credentialExpires": soon,
        "nextClientCertificate": cert.cert_pem,
        "nextClientCertificateKey": cert.key_pem,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "revocationUrl": idp.revocation_url,
    }
    answers = [await (await client.post("/v1/oauth2", json=body, headers=admin)).text()]
    for n in range(3):
        oauth2 = {"provider": "scan", "auth": {"user": f"s{n}@example.test"}}
        oauth2["refreshToken"] = str(idp.mint(f"scan-{n}", SCOPES)["refresh_token"])
        resp = await client.post(
            "/v1/account", json={"account": f"s{n}", "oauth2": oauth2}, headers=admin
        )
        assert resp.status == 200, await resp.text()
    expire_credential(idp, "default")
    for n in range(3):
        resp = await client.post(f"/v1/account/s{n}/refresh", headers=admin)
        assert resp.status == 200, await resp.text()
    await CredentialWatch(core.apps, config, ManualClock(SystemClock().now_ms())).check()
    answers.append(await (await client.get("/v1/oauth2/scan", headers=admin)).text())
    promoted = await client.post("/v1/oauth2/scan/credentials/promote", headers=admin)
    answers.append(await promoted.text())
    put = {"nextClientSecret": NEXT_SECRET}
    answers.append(await (await client.put("/v1/oauth2/scan", json=put, headers=admin)).text())
    answers.append(await (await client.get("/v1/oauth2", headers=admin)).text())
    resp = await client.delete("/v1/account/s0?revoke=true", headers=admin)
    assert resp.status == 200, await resp.text()

    assertions = {str(a["assertion"]) for a in auth_attempts(idp) if a["assertion"]}
    assert len(assertions) >= 3  # every refresh after the first refusal, and the revocation
    secrets = {idp.client_secret, NEXT_SECRET, _key_body(cert.key_pem), *assertions}
    dumped, _ = await dump_redis(config.redis_url)
    logged = captured_log.text.encode()
    assert logged  # the flow did log
    for label, raw in _forms(secrets).items():
        assert raw not in dumped, f"{label[:20]} found in Redis"
        assert raw not in logged, f"{label[:20]} found in the log"
        assert all(raw.decode(errors="ignore") not in a for a in answers), label[:20]


async def test_key_rotation_moves_every_credential(core: Core) -> None:
    """`keys rotate` re-encrypts a certificate key and a next secret like any sealed field."""
    cert = self_signed("rotated-cert")
    body = {
        "id": "sealed",
        "provider": "oidc",
        "clientId": "c",
        "tokenUrl": "https://idp.example/token",
        "clientCertificate": cert.cert_pem,
        "clientCertificateKey": cert.key_pem,
        "nextClientSecret": "next",
    }
    await core.apps.create(body, iso(SystemClock().now_ms()))
    records = SealedRecords(core.redis, core.keys)
    stats = await KeyRotation(core.redis, core.scripts, NEW, records).rotate(batch=10)
    assert stats.complete and stats.rotated == 2
    app = await core.apps.require("sealed")
    current, nxt = app_credentials.ordered(app, NEW_ONLY)
    assert current.certificate is not None and current.certificate.key_pem == cert.key_pem.strip()
    assert nxt.secret == "next"
