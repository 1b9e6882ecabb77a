"""The outbound client: non-public addresses refused at connect time, answers read up to a cap."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from service import errors
from service.apps import App
from service.clock import SystemClock
from service.config import Config
from service.crypto.credentials import ClientCredential
from service.oauth.client import Failure, OAuthClient
from service.oauth.discovery import Discovery
from service.oauth.identity import IdentityVerifier
from service.outbound.addresses import host_refusal
from service.outbound.session import MAX_ANSWER_BYTES, outbound_session, refusal_in
from service.outbound.urls import check_outbound_url

SECRET = ClientCredential("current", secret="secret")

BIG = 50 * 1024 * 1024  # an answer far beyond every cap
# Hosts that all lead to 127.0.0.1, in the notations the resolver or the client accept.
LOOPBACK_HOSTS = (
    "127.0.0.1",
    "localhost",
    "localhost.",
    "0x7f000001",
    "2130706433",
    "0",
    "127.1",
    "0177.0.0.1",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[64:ff9b::7f00:1]",
)


@dataclasses.dataclass
class Listener:
    """A loopback HTTP server that counts requests and can answer with a huge streamed body."""

    hits: int = 0
    sent: int = 0
    finished: bool = False
    ended: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    port: int = 0

    async def hit(self, request: web.Request) -> web.Response:
        """Count the request; answer a small JSON object."""
        self.hits += 1
        return web.json_response({"ok": True})

    async def big(self, request: web.Request) -> web.StreamResponse:
        """Stream BIG bytes of JSON whitespace (no Content-Length); note how far it got."""
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b" " * 65536
        try:
            while self.sent < BIG:
                await response.write(chunk)
                self.sent += len(chunk)
            await response.write_eof()
            self.finished = True
        except OSError:  # the client hung up
            pass
        finally:
            self.ended.set()
        return response


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    """A Listener on 127.0.0.1."""
    found = Listener()
    app = web.Application()
    app.router.add_route("*", "/", found.hit)
    app.router.add_route("*", "/big", found.big)
    app.router.add_get("/.well-known/openid-configuration", found.big)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    found.port = server.port or 0
    yield found
    await server.close()


class StaticResolver(AbstractResolver):
    """Resolves every name to 127.0.0.1, as a hostile DNS answer would."""

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """127.0.0.1 for any name."""
        return [
            {
                "hostname": host,
                "host": "127.0.0.1",
                "port": port,
                "family": socket.AF_INET,
                "proto": 0,
                "flags": 0,
            }
        ]

    async def close(self) -> None:
        """Nothing to close."""


def private(config: Config, allowed: bool) -> Config:
    """`config` with private URLs allowed or not."""
    return dataclasses.replace(config, allow_private_urls=allowed)


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost.", "loopback"),
        ("0x7f000001", "loopback"),
        ("2130706433", "loopback"),
        ("0", "unspecified"),
        ("127.1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("::", "unspecified"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),
        ("256.0.0.1", "invalid"),
        ("93.184.215.14", None),
        ("::ffff:93.184.215.14", None),
        ("2606:4700::1111", None),
        ("hooks.example.com", None),
    ],
)
def test_host_refusal_in_every_notation(host: str, reason: str | None) -> None:
    """The rule names why a host is refused in any notation; public ones and names pass."""
    assert host_refusal(host) == reason


@pytest.mark.parametrize("host", LOOPBACK_HOSTS)
async def test_loopback_refused_in_every_notation(
    config: Config, listener: Listener, host: str
) -> None:
    """With private URLs disallowed no notation of loopback reaches a loopback listener."""
    url = f"http://{host}:{listener.port}/"
    with pytest.raises(errors.InvalidInput):  # the save-time check agrees
        check_outbound_url(url, "webhooks", allow_private=False)
    async with outbound_session(private(config, False)) as http:
        with pytest.raises(aiohttp.ClientError) as caught:
            async with http.get(url) as response:
                await response.read()
    assert listener.hits == 0
    if refusal_in(caught.value) is None:  # refused before any connection was tried
        never_tried = (aiohttp.InvalidUrlClientError, aiohttp.ClientConnectorDNSError)
        assert isinstance(caught.value, never_tried), caught.value
        assert host not in ("127.0.0.1", "localhost", "[::ffff:127.0.0.1]")


async def test_name_resolving_to_loopback_refused(config: Config, listener: Listener) -> None:
    """A public-looking name whose DNS answer is loopback is refused; allowed, it connects."""
    url = f"http://hooks.example.com:{listener.port}/"
    async with outbound_session(private(config, False), resolver=StaticResolver()) as http:
        with pytest.raises(aiohttp.ClientError) as caught:
            await http.get(url)
    assert "hooks.example.com (127.0.0.1)" in (refusal_in(caught.value) or "")
    assert listener.hits == 0
    allowed = outbound_session(private(config, True), resolver=StaticResolver())
    async with allowed as http, http.get(url) as response:
        assert response.status == 200
    assert listener.hits == 1


async def test_allowed_private_urls_reach_loopback(config: Config, listener: Listener) -> None:
    """With TOKENBROKER_ALLOW_PRIVATE_URLS (the tests' setting) loopback is reachable."""
    async with outbound_session(private(config, True)) as http:
        for host in ("127.0.0.1", "localhost"):
            async with http.get(f"http://{host}:{listener.port}/") as response:
                assert response.status == 200
    assert listener.hits == 2


async def wait_ended(listener: Listener) -> None:
    """Wait (max 10 s) until the big answer's handler has stopped writing."""
    await asyncio.wait_for(listener.ended.wait(), 10)


def assert_cut_short(listener: Listener) -> None:
    """The client stopped reading near the cap: the server could not send the whole answer."""
    assert not listener.finished
    assert listener.sent < BIG // 4, listener.sent  # the cap plus the sockets' buffers


async def test_token_answer_capped(config: Config, listener: Listener) -> None:
    """A 50 MB token answer is a transient failure; the client stops reading at the cap."""
    app = App("big", "oidc", "client", {"tokenUrl": f"http://127.0.0.1:{listener.port}/big"})
    async with outbound_session(config) as http:
        started = time.monotonic()
        result = await OAuthClient(http, SystemClock(), 10.0).refresh(app, SECRET, "rt")
    assert isinstance(result, Failure) and result.kind == "transient"
    assert result.error == "network" and result.description == "AnswerTooLarge"
    await wait_ended(listener)
    assert_cut_short(listener)
    assert time.monotonic() - started < 10


async def test_discovery_answer_capped(config: Config, listener: Listener) -> None:
    """A 50 MB discovery document is refused as a client error, read only up to the cap."""
    async with outbound_session(config) as http:
        discovery = Discovery(http, aiohttp.ClientTimeout(total=10))
        with pytest.raises(aiohttp.ClientPayloadError, match=str(MAX_ANSWER_BYTES)):
            await discovery.document(f"http://127.0.0.1:{listener.port}")
    await wait_ended(listener)
    assert_cut_short(listener)


async def test_userinfo_answer_capped(config: Config, listener: Listener) -> None:
    """A 50 MB userinfo answer makes the provider unavailable, read only up to the cap."""
    url = f"http://127.0.0.1:{listener.port}/big"
    app = App("big", "oidc", "client", {"userinfoUrl": url})
    timeout = aiohttp.ClientTimeout(total=10)
    async with outbound_session(config) as http:
        verifier = IdentityVerifier(http, Discovery(http, timeout), SystemClock(), timeout)
        with pytest.raises(errors.ProviderUnavailable):
            await verifier.identify(app, None, "access-token", "nonce")
    await wait_ended(listener)
    assert_cut_short(listener)
