"""The HTTP client for URLs from operators, API callers and providers: guarded and capped.

Every call to such a URL (webhooks, discovery, token, userinfo, JWKS, revocation) goes
through a session from `outbound_session`. Unless TOKENBROKER_ALLOW_PRIVATE_URLS is set, its
connector refuses, at connect time, every address that is not public unicast: each address
a name resolves to is checked (one bad address refuses the name), and each socket is checked
again against the exact address it is about to connect to (IP literals never meet the
resolver). A refusal is an OSError, so callers see an ordinary network failure.
Answers are read up to a cap: a bigger one is a failure, never a big buffer.
"""

from __future__ import annotations

import ipaddress
import socket

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult

from service.config import Config
from service.outbound.addresses import refusal
from service.tracing import trace_configs

log = structlog.get_logger("outbound")
MAX_ANSWER_BYTES = 1 << 20  # token, discovery, JWKS and userinfo answers are read up to this
DRAIN_BYTES = 64 << 10  # a webhook answer is drained (not kept) up to this, then dropped
Exempt = frozenset[tuple[str, int]]


class OutboundRefused(OSError):
    """A connection the guard refused: the host is, or resolves to, a non-public address."""


class AnswerTooLarge(aiohttp.ClientPayloadError):
    """An answer bigger than the cap; nothing beyond the cap was read."""


class AddressGuard:
    """Refuses non-public addresses; `exempt` (address, port) pairs are let through (tests)."""

    def __init__(self, exempt: Exempt = frozenset()) -> None:
        self.exempt = exempt

    def check(self, host: str, address: str, port: int) -> None:
        """Raise OutboundRefused unless the service may connect to `address`:`port`."""
        if (address, port) in self.exempt:
            return
        try:
            reason = refusal(ipaddress.ip_address(address))
        except ValueError:
            reason = "invalid"
        if reason is None:
            return
        log.warning("outbound_refused", host=host, address=address, port=port, reason=reason)
        shown = host if host == address else f"{host} ({address})"
        raise OutboundRefused(
            f"refused to connect to {shown}: a {reason} address "
            "(allowed only with TOKENBROKER_ALLOW_PRIVATE_URLS=true)"
        )

    def socket_factory(self, addr_info: aiohttp.AddrInfoType) -> socket.socket:
        """Make the socket for one connection attempt, after checking its address."""
        family, kind, proto, _, sockaddr = addr_info
        self.check(str(sockaddr[0]), str(sockaddr[0]), int(sockaddr[1]))
        return socket.socket(family=family, type=kind, proto=proto)


class GuardedResolver(AbstractResolver):
    """The system resolver, refusing a name when any address it resolves to is refused."""

    def __init__(self, guard: AddressGuard, inner: AbstractResolver | None = None) -> None:
        self.guard = guard
        self.inner = inner or aiohttp.ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        """Resolve `host`; raise OutboundRefused if any of its addresses is not public."""
        found = await self.inner.resolve(host, port, family)
        for result in found:
            self.guard.check(host, result["host"], result["port"])
        return found

    async def close(self) -> None:
        """Close the inner resolver."""
        await self.inner.close()


def outbound_session(
    config: Config,
    *,
    limit: int = 100,
    exempt: Exempt = frozenset(),
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """A client session for outside URLs: guarded unless private URLs are allowed.

    `limit` caps its connections; `exempt` lets named (address, port) pairs through the
    guard (for tests that serve a provider on loopback); `resolver` replaces the system's.
    """
    if config.allow_private_urls:
        connector = aiohttp.TCPConnector(limit=limit, resolver=resolver)
    else:
        guard = AddressGuard(exempt)
        connector = aiohttp.TCPConnector(
            limit=limit,
            resolver=GuardedResolver(guard, resolver),
            socket_factory=guard.socket_factory,
        )
    return aiohttp.ClientSession(
        connector=connector,
        raise_for_status=False,
        trust_env=False,
        trace_configs=trace_configs(config) or None,
    )


def refusal_in(exc: BaseException) -> str | None:
    """The guard's message when it caused `exc` (a client error), else None."""
    seen: BaseException | None = exc
    for _ in range(8):  # the causes of a connector error are a short chain
        if seen is None:
            return None
        if isinstance(seen, OutboundRefused):
            return str(seen)
        os_error = getattr(seen, "os_error", None)
        seen = os_error if isinstance(os_error, BaseException) else seen.__cause__
    return None


async def read_capped(response: aiohttp.ClientResponse, limit: int = MAX_ANSWER_BYTES) -> bytes:
    """The answer's body; AnswerTooLarge (a ClientError) as soon as it passes `limit` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise AnswerTooLarge(f"the answer announces {response.content_length} bytes")
    body = bytearray()
    async for chunk in response.content.iter_any():
        body += chunk
        if len(body) > limit:
            raise AnswerTooLarge(f"the answer is longer than {limit} bytes")
    return bytes(body)


async def discard(response: aiohttp.ClientResponse, limit: int = DRAIN_BYTES) -> None:
    """Drop the answer's body: drain a small one (the connection stays reusable), else close.

    Only the status counts, so trouble while draining is ignored.
    """
    seen = 0
    try:
        async for chunk in response.content.iter_any():
            seen += len(chunk)
            if seen > limit:
                break
    except (aiohttp.ClientError, OSError):
        pass
    if not response.content.at_eof():
        response.close()
