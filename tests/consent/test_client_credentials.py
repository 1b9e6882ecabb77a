"""Consent with rotated credentials: the code exchange retries with the next certificate."""

from __future__ import annotations

from service.core import Core
from tests.support.certs import auth_attempts, expire_credential, register_certificate, self_signed
from tests.support.consent import Client, connect
from tests.support.idp import Idp


async def test_code_exchange_moves_to_the_next_certificate(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core, flow_idp: Idp, flow_app: str
) -> None:
    """An expired current secret and a next certificate: the consent still connects."""
    cert = self_signed("consent-cert")
    register_certificate(flow_idp, "cert", cert.cert_pem)
    app = await flow_core.apps.require(flow_app)
    change = {"nextClientCertificate": cert.cert_pem, "nextClientCertificateKey": cert.key_pem}
    await flow_core.apps.update(app, change, "2026-12-06T00:00:00.000Z")
    expire_credential(flow_idp, "default")
    resp = await connect(flow_client, flow_admin, flow_idp, "dave")
    assert resp.status == 200, await resp.text()
    assert (await flow_core.accounts.require("dave")).status == "active"
    tried = [(a["method"], a["ok"]) for a in auth_attempts(flow_idp)]
    assert tried == [("secret", False), ("certificate", True)]
    assert (await flow_core.apps.require(flow_app)).fields["credentialInUse"] == "next"
