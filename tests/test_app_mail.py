"""An app's mail server fields: checked on input, shown by the API, reset by null."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.core import Core
from tests.conftest import make_token

Client = TestClient[web.Request, web.Application]
BASE = {"provider": "gmail", "clientId": "c", "clientSecret": "s"}


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"imapPort": 0}, "imapPort"),
        ({"smtpPort": "587"}, "smtpPort"),
        ({"smtpPort": 587.5}, "smtpPort"),
        ({"imapPort": True}, "imapPort"),
        ({"imapTls": "ssl"}, "imapTls"),
        ({"smtpHost": "smtp.example.test:587"}, "smtpHost"),
        ({"imapHost": "-bad-"}, "imapHost"),
        ({"mailApiUrl": "ftp://example.test/"}, "mailApiUrl"),
    ],
)
async def test_bad_mail_fields_refused(
    client: Client, admin: dict[str, str], fields: dict[str, Any], field: str
) -> None:
    """A port out of range or not an integer, an unknown TLS mode, a bad host or URL: 400."""
    resp = await client.post("/v1/oauth2", json={**BASE, "id": "m", **fields}, headers=admin)
    body = await resp.json()
    assert resp.status == 400 and body["code"] == "InvalidInput", body
    assert body["details"]["field"] == field


async def test_mail_fields_round_trip_and_reset(client: Client, admin: dict[str, str]) -> None:
    """Set fields show in GET /v1/oauth2/{app} (ports as numbers); null resets one."""
    fields = {"imapHost": "imap.example.test", "imapPort": 1993, "imapTls": "tls"}
    as_float = {**fields, "imapPort": 1993.0}  # JSON's integer written with a fraction
    resp = await client.post("/v1/oauth2", json={**BASE, "id": "m", **as_float}, headers=admin)
    assert resp.status == 200, await resp.text()
    shown = await (await client.get("/v1/oauth2/m", headers=admin)).json()
    assert {k: shown[k] for k in fields} == fields and "smtpHost" not in shown
    resp = await client.put("/v1/oauth2/m", json={"imapPort": None}, headers=admin)
    assert resp.status == 200, await resp.text()
    shown = await (await client.get("/v1/oauth2/m", headers=admin)).json()
    assert "imapPort" not in shown and shown["imapHost"] == "imap.example.test"


async def test_mail_servers_need_operator_authority(
    client: Client, admin: dict[str, str], core: Core
) -> None:
    """An `api` token may set mailScope but not where tokens go: hosts, ports, TLS, the API URL."""
    api = {"Authorization": f"Bearer {await make_token(core, 'api')}"}
    resp = await client.post("/v1/oauth2", json={**BASE, "id": "m", "imapPort": 993}, headers=admin)
    assert resp.status == 200, await resp.text()
    for field, value in (("imapHost", "evil.example"), ("smtpTls", "plain"), ("imapPort", 143)):
        resp = await client.put("/v1/oauth2/m", json={field: value}, headers=api)
        body = await resp.json()
        assert resp.status == 403 and body["code"] == "OperatorAuthorityRequired", body
        assert body["details"]["fields"] == [field]
    same = await client.put("/v1/oauth2/m", json={"imapPort": 993, "mailScope": "x"}, headers=api)
    assert same.status == 200, await same.text()
