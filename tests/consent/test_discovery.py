"""Issuer discovery: endpoints of issuer-only apps, cached, and fetched again after a failure."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from service.apps import App
from service.clock import SystemClock, iso
from service.config import Config
from service.core import Core
from service.crypto.credentials import ClientCredential
from service.oauth.client import Failure, OAuthClient
from service.outbound.session import outbound_session
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
    failure = await flow_core.oauth.refresh(app, ClientCredential("current", "s"), "rt")
    assert failure.kind == "transient" and failure.error == "network"  # type: ignore[union-attr]


@dataclasses.dataclass
class Issuer:
    """An issuer on loopback whose discovery document names a token endpoint elsewhere."""

    port: int = 0
    token_port: int = 0
    documents: int = 0
    token_forms: list[dict[str, str]] = dataclasses.field(default_factory=list)

    @property
    def url(self) -> str:
        """The issuer identifier."""
        return f"http://127.0.0.1:{self.port}"

    async def document(self, request: web.Request) -> web.Response:
        """The discovery document, naming a loopback token endpoint on another port."""
        self.documents += 1
        return web.json_response(
            {"issuer": self.url, "token_endpoint": f"http://127.0.0.1:{self.token_port}/token"}
        )

    async def token(self, request: web.Request) -> web.Response:
        """Record what the token endpoint was sent."""
        self.token_forms.append({k: str(v) for k, v in (await request.post()).items()})
        return web.json_response({"access_token": "at", "token_type": "Bearer"})


@pytest.fixture
async def issuer() -> AsyncIterator[Issuer]:
    """The issuer and its token endpoint, two servers on 127.0.0.1."""
    found = Issuer()
    servers = []
    for path, handler in (
        ("/.well-known/openid-configuration", found.document),
        ("/token", found.token),
    ):
        app = web.Application()
        app.router.add_route("*", path, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
    found.port, found.token_port = servers[0].port or 0, servers[1].port or 0
    yield found
    for server in servers:
        await server.close()


async def test_discovered_loopback_token_endpoint_refused(config: Config, issuer: Issuer) -> None:
    """A discovery document naming a loopback token URL never gets the code, verifier, secret.

    Only the issuer's own address is let through the guard (it is on loopback too); the
    token endpoint it names is refused at connect time, so the exchange fails as a network
    error. With that endpoint let through as well, the same exchange does reach it.
    """
    guarded = dataclasses.replace(config, allow_private_urls=False)
    app = App("evil", "oidc", "client", {"issuer": issuer.url})
    secret = ClientCredential("current", "the-secret")
    exchange = (secret, "the-code", "the-verifier", "http://127.0.0.1:8080/oauth/callback")
    async with outbound_session(guarded, exempt=frozenset({("127.0.0.1", issuer.port)})) as http:
        result = await OAuthClient(http, SystemClock(), 3.0).exchange_code(app, *exchange)
    assert isinstance(result, Failure) and result.error == "network"
    assert issuer.documents == 1 and issuer.token_forms == []
    both = {("127.0.0.1", issuer.port), ("127.0.0.1", issuer.token_port)}
    async with outbound_session(guarded, exempt=frozenset(both)) as http:
        result = await OAuthClient(http, SystemClock(), 3.0).exchange_code(app, *exchange)
    assert [form["code_verifier"] for form in issuer.token_forms] == ["the-verifier"]
