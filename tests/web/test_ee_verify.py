"""POST /v1/oauth2/{app}/verify: EmailEngine's answer shape, each step's outcome, bad input."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.ee_transcript import entry, same_shape
from tests.web.test_apps_emailengine import create_all, replay

Client = TestClient[web.Request, web.Application]


def steps(body: dict[str, Any]) -> dict[str, str]:
    """Step id -> status."""
    return {step["id"]: step["status"] for step in body["steps"]}


async def test_recorded_verifications(client: Client, admin: dict[str, str]) -> None:
    """The recorded verify requests answer EmailEngine's status and shape, and our outcomes."""
    await create_all(client, admin)
    found = {}
    for name in (
        "oauth2.verify.gmail-service",
        "oauth2.verify.outlook-service",
        "oauth2.verify.gmail-imap",
        "oauth2.verify.missing",
    ):
        recorded = entry(name)
        status, body = await replay(client, admin, name)
        assert status == recorded["status"], (name, body)
        assert same_shape(body, recorded["responseBody"]) == [], name
        found[name] = body
    gsvc = found["oauth2.verify.gmail-service"]
    assert gsvc["authMethod"] == "serviceKey" and gsvc["account"].startswith("a.workspace@")
    assert steps(gsvc) == {"config": "ok", "sign": "ok", "token": "skip"} and gsvc["ok"] is True
    assert found["oauth2.verify.outlook-service"]["authMethod"] == "clientCredentials"
    imap = found["oauth2.verify.gmail-imap"]
    assert imap["authMethod"] is None and imap["account"] is None
    assert steps(imap) == {"config": "ok", "endpoints": "ok", "interactive": "skip"}
    assert found["oauth2.verify.missing"]["code"] == "AppNotFound"


async def test_failing_steps(client: Client, admin: dict[str, str], oidc_app: str) -> None:
    """An oidc app whose issuer cannot be read fails its endpoints step: ok is false."""
    body = {"id": "broken", "provider": "oidc", "clientId": "c", "clientSecret": "s"}
    body["issuer"] = "http://127.0.0.1:9/nowhere"
    assert (await client.post("/v1/oauth2", json=body, headers=admin)).status == 200
    resp = await client.post("/v1/oauth2/broken/verify", json={}, headers=admin)
    answer = await resp.json()
    assert resp.status == 200 and answer["ok"] is False
    assert steps(answer)["endpoints"] == "fail"
    good = await client.post(f"/v1/oauth2/{oidc_app}/verify", headers=admin)
    assert good.status == 200 and (await good.json())["ok"] is True


async def test_bad_input(client: Client, admin: dict[str, str], oidc_app: str) -> None:
    """Unknown fields and a bad testConnection are 400; an unknown app is 404."""
    path = f"/v1/oauth2/{oidc_app}/verify"
    for body in ({"colour": 1}, {"testConnection": "maybe"}, {"account": 5}):
        resp = await client.post(path, json=body, headers=admin)
        assert resp.status == 400, body
    words = {"testConnection": "Y", "account": " "}
    assert (await client.post(path, json=words, headers=admin)).status == 200
    assert (await client.post("/v1/oauth2/nope/verify", headers=admin)).status == 404
