"""Settings pages: the provider type first, then a form with only that type's fields."""

from __future__ import annotations

import re

import orjson
import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from service.core import Core
from service.providers import KINDS
from tests.support.admin import csrf, post_form
from tests.support.certs import self_signed
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
TENANT = "6ba7b810-9dad-11d1-80b4-00c04fd430c8"
SECRET = "osvc-secret-never-shown"
NAMES = re.compile(r'name="([A-Za-z]+)"')
CONSENT = {"enabled", "redirectUrl", "additionalScopes", "skipScopes"}
CERTIFICATE = {"clientCertificate", "clientCertificateKey"}
SERVICE_ACCOUNT = {"serviceClient", "serviceClientEmail", "serviceKey", "serviceKeyFile"}
SHOWN: dict[str, tuple[set[str], set[str]]] = {  # type -> (on its form, not on it)
    "gmail": ({"clientId", "clientSecret", "baseScopes", *CONSENT}, {"tenant", *CERTIFICATE}),
    "outlook": ({"tenant", "cloud", *CERTIFICATE, *CONSENT}, SERVICE_ACCOUNT),
    "mailRu": ({"clientId", "clientSecret", *CONSENT}, {"tenant", "baseScopes", *CERTIFICATE}),
    "oidc": ({"issuer", "tokenUrl", *CERTIFICATE, *CONSENT}, {"tenant", *SERVICE_ACCOUNT}),
    "gmailService": (
        {*SERVICE_ACCOUNT, "baseScopes", "additionalScopes"},
        {"clientId", "clientSecret", "enabled", "redirectUrl", "tenant", *CERTIFICATE},
    ),
    "outlookService": (
        {"tenant", "clientId", "clientSecret", "cloud", "baseScopes", *CERTIFICATE},
        {"enabled", "redirectUrl", "additionalScopes", *SERVICE_ACCOUNT},
    ),
}


async def fields_of(operator: Client, path: str) -> set[str]:
    """The names of a page's form fields."""
    resp = await operator.get(path)
    assert resp.status == 200, path
    return set(NAMES.findall(await resp.text()))


async def test_type_first_then_only_its_fields(operator: Client) -> None:
    """The first step offers every type; each type's form has its fields and no others."""
    page = await (await operator.get("/admin/apps/new")).text()
    assert all(f'<option value="{kind}">' in page for kind in KINDS)
    assert 'method="get" action="/admin/apps/new"' in page and "clientSecret" not in page
    assert set(SHOWN) == set(KINDS)
    for kind, (shown, hidden) in SHOWN.items():
        names = await fields_of(operator, f"/admin/apps/new?provider={kind}")
        assert shown <= names, (kind, shown - names)
        assert not hidden & names, (kind, hidden & names)
    page = await (await operator.get("/admin/apps/new?provider=outlookService")).text()
    assert re.search(r'name="tenant"[^>]*required', page)
    assert 'enctype="multipart/form-data"' in (
        await (await operator.get("/admin/apps/new?provider=gmailService")).text()
    )
    unknown = await (await operator.get("/admin/apps/new?provider=yahoo")).text()
    assert 'id="choose-kind"' in unknown


async def test_gmail_service_app_from_uploaded_key_file(
    operator: Client, core: Core, idp: Idp
) -> None:
    """An uploaded JSON key file makes the app (ids from the file); the key is never shown."""
    key_file = idp.service_account()
    form = FormData()
    form.add_field("csrf", await csrf(operator, "/admin/apps/new?provider=gmailService"))
    for name, value in (("id", "ws"), ("provider", "gmailService"), ("baseScopes", "api")):
        form.add_field(name, value)
    form.add_field("serviceKey", "")
    text = orjson.dumps(key_file)
    form.add_field("serviceKeyFile", text, filename="key.json", content_type="application/json")
    resp = await operator.post("/admin/apps/new", data=form, allow_redirects=False)
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("ws")
    assert app.fields["serviceClientEmail"] == key_file["client_email"]
    assert app.fields["serviceClient"] == key_file["client_id"]
    assert core.apps.service_key(app) == text.decode()
    page = await (await operator.get("/admin/apps/ws")).text()
    assert "PRIVATE KEY" not in page and "private_key" not in page
    assert 'name="clientSecret"' not in page and 'id="redirect-url"' not in page
    resp = await post_form(operator, "/admin/apps/ws", {"name": "Workspace", "serviceKey": ""})
    assert resp.status == 303, await resp.text()
    kept = await core.apps.require("ws")
    assert core.apps.service_key(kept) == text.decode() and kept.fields["name"] == "Workspace"
    assert kept.fields["serviceClient"] == key_file["client_id"]  # an empty field keeps it


async def test_gmail_service_app_from_pasted_pem(operator: Client, core: Core, idp: Idp) -> None:
    """A pasted PEM key with the client id and email makes the app; a bad key is refused."""
    key_file = idp.service_account()
    form = {
        "id": "pem",
        "provider": "gmailService",
        "serviceClient": str(key_file["client_id"]),
        "serviceClientEmail": str(key_file["client_email"]),
        "serviceKey": "not a key",
    }
    resp = await post_form(operator, "/admin/apps/new", form)
    body = await resp.text()
    assert resp.status == 400 and "serviceKey" in body and "not a key" not in body
    assert f'value="{key_file["client_email"]}"' in body  # what was typed is kept
    form["serviceKey"] = str(key_file["private_key"])
    resp = await post_form(operator, "/admin/apps/new", form)
    assert resp.status == 303, await resp.text()
    assert (await core.apps.require("pem")).provider == "gmailService"


@pytest.mark.parametrize("credential", ["secret", "certificate"])
async def test_outlook_service_app_needs_tenant(
    operator: Client, core: Core, credential: str
) -> None:
    """An outlookService app needs its tenant; it takes a secret or a certificate, never shown."""
    form = {"id": "exo", "provider": "outlookService", "clientId": "cid", "cloud": "gcc-high"}
    if credential == "secret":
        form["clientSecret"] = SECRET
    else:
        cert = self_signed("exo")
        form.update(clientCertificate=cert.cert_pem, clientCertificateKey=cert.key_pem)
    resp = await post_form(operator, "/admin/apps/new", form)
    body = await resp.text()
    assert resp.status == 400 and "authority is required" in body
    assert SECRET not in body and "PRIVATE KEY" not in body
    resp = await post_form(operator, "/admin/apps/new", {**form, "tenant": TENANT})
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("exo")
    assert (app.fields["tenant"], app.cloud) == (TENANT, "gcc-high")
    assert app.scopes == ["https://graph.microsoft.us/.default"]
    page = await (await operator.get("/admin/apps/exo")).text()
    assert SECRET not in page and "PRIVATE KEY" not in page
    edit = {"clientId": "cid", "tenant": TENANT, "cloud": "gcc-high", "baseScopes": "imap"}
    resp = await post_form(operator, "/admin/apps/exo", edit)
    assert resp.status == 303, await resp.text()
    assert (await core.apps.require("exo")).scopes == ["https://outlook.office365.us/.default"]
