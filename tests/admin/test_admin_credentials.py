"""Settings pages: certificate and next credentials, the promote button, expiry warnings."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import iso
from service.core import Core
from service.credential_watch import DAY_MS
from tests.support.admin import post_form
from tests.support.certs import self_signed
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
NEXT = "next-secret-never-shown"


def form(idp: Idp, **extra: str) -> dict[str, str]:
    """A filled-in add-app form for an oidc app with a next secret."""
    return {
        "id": "rot",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "nextClientSecret": NEXT,
        "issuer": idp.issuer,
        **extra,
    }


async def test_promote_button_swaps_credentials(operator: Client, core: Core, idp: Idp) -> None:
    """The app page offers one click to promote the next secret; it is never shown."""
    resp = await post_form(operator, "/admin/apps/new", form(idp))
    assert resp.status == 303, await resp.text()
    page = await (await operator.get("/admin/apps/rot")).text()
    assert 'id="promote-credentials"' in page and NEXT not in page
    resp = await post_form(
        operator, "/admin/apps/rot/credentials/promote", {}, page="/admin/apps/rot"
    )
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("rot")
    assert core.apps.client_secret(app) == NEXT and "nextClientSecret" not in app.encrypted
    page = await (await operator.get("/admin/apps/rot")).text()
    assert "now the current one" in page and 'id="promote-credentials"' not in page


async def test_certificate_from_the_form(operator: Client, core: Core, idp: Idp) -> None:
    """A certificate and its key pasted in the form make a certificate app; the key stays hidden."""
    cert = self_signed("form-cert")
    fields = {"clientCertificate": cert.cert_pem, "clientCertificateKey": cert.key_pem}
    resp = await post_form(operator, "/admin/apps/new", form(idp, clientSecret="", **fields))
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("rot")
    assert "clientCertificateKey" in app.encrypted and app.encrypted_secret is None
    page = await (await operator.get("/admin/apps/rot")).text()
    assert "PRIVATE KEY" not in page and "certificate" in page


async def test_dashboard_warns_before_expiry(operator: Client, core: Core, idp: Idp) -> None:
    """The dashboard names an app whose current credential dies within 14 days."""
    soon = iso(core.clock.now_ms() + 5 * DAY_MS + 3_600_000)
    resp = await post_form(operator, "/admin/apps/new", form(idp, credentialExpires=soon))
    assert resp.status == 303, await resp.text()
    page = await (await operator.get("/admin/")).text()
    assert 'id="expiring"' in page and "expires in 5 days" in page
