"""Issuer discovery: endpoints of issuer-only apps, cached, and fetched again after a failure."""

from __future__ import annotations

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.consent import Client
from tests.support.idp import Idp


async def test_discovered_endpoints_cached_and_forgotten(
    flow_client: Client, flow_app: str, flow_idp: Idp, flow_core: Core
) -> None:
    """Each endpoint comes from the issuer's document, which is kept until forgotten."""
    app = await flow_core.apps.require(flow_app)
    discovery = flow_core.oauth.discovery
    assert await discovery.endpoint(app, "revocation_url") == flow_idp.revocation_url
    assert await discovery.endpoint(app, "jwks_url") == flow_idp.jwks_url
    first = await discovery.document(flow_idp.issuer)
    assert await discovery.document(flow_idp.issuer) is first
    discovery.forget(flow_idp.issuer)
    again = await discovery.document(flow_idp.issuer)
    assert again is not first and again == first


async def test_unreachable_issuer(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core
) -> None:
    """An issuer that does not answer: 503 ProviderUnavailable, and discovery is tried again."""
    body = {
        "id": "dark",
        "provider": "oidc",
        "clientId": "c",
        "clientSecret": "s",
        "issuer": "http://127.0.0.1:9",
    }
    await flow_core.apps.create(body, iso(SystemClock().now_ms()))
    request = {"oauth2": {"provider": "dark", "authorize": True}}
    for _ in range(2):  # nothing negative is cached: each request asks the issuer again
        resp = await flow_client.post("/v1/account", json=request, headers=flow_admin)
        assert resp.status == 503 and (await resp.json())["code"] == "ProviderUnavailable"
    app = await flow_core.apps.require("dark")
    failure = await flow_core.oauth.refresh(app, "s", "rt")
    assert failure.kind == "transient" and failure.error == "network"  # type: ignore[union-attr]
