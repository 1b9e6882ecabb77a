"""The client's address: the peer's, or behind trusted proxies the one they forwarded."""

from __future__ import annotations

import functools
import ipaddress

from aiohttp import web

from service.config import Network
from service.web.appkeys import CONFIG

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=1024)
def parse_address(text: str) -> Address | None:
    """An IP address from a peer or X-Forwarded-For entry ("[v6]" and "v4:port" too), or None.

    Cached: the token endpoint reads its client's address for the audit trail on every
    answer, and a few peers (proxies, programs) make most requests.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_address(peer: str | None, forwarded: list[str], trusted: tuple[Network, ...]) -> str:
    """The client as far as trusted proxies vouch for it.

    A peer that is not a trusted proxy is the client. From a trusted one, X-Forwarded-For is
    read right to left (each proxy appends the address it saw) and the first address that is
    not itself a trusted proxy is the client; entries left of it are the client's own words.
    An unreadable entry stops the walk at the last proxy believed.
    """
    hop = parse_address(peer or "")
    if hop is None:
        return peer or "unknown"
    entries = [entry for header in forwarded for entry in header.split(",")]
    while entries and any(hop in network for network in trusted):
        found = parse_address(entries.pop())
        if found is None:
            break
        hop = found
    return _text(hop)


@functools.lru_cache(maxsize=1024)
def _text(address: Address) -> str:
    """An address's text (cached: str() of an ipaddress object is not cheap)."""
    return str(address)


@functools.lru_cache(maxsize=1024)
def _peer_client(peer: str | None, trusted: tuple[Network, ...]) -> str:
    """The client of a request without X-Forwarded-For (cached: a few peers make most)."""
    return client_address(peer, [], trusted)


def client_ip(request: web.Request) -> str:
    """The request's client address under TOKENBROKER_TRUSTED_PROXIES."""
    forwarded = request.headers.getall("X-Forwarded-For", ())
    trusted = request.app[CONFIG].trusted_proxies
    if not forwarded:
        return _peer_client(request.remote, trusted)
    return client_address(request.remote, list(forwarded), trusted)
