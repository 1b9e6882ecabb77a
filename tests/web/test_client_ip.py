"""The client address: the peer's, or what trusted proxies forwarded (right-most untrusted)."""

from __future__ import annotations

import ipaddress

import pytest

from service.web.client_ip import client_address, parse_address

PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))


def test_untrusted_peer_is_the_client_whatever_it_forwards() -> None:
    """A peer outside the trusted proxies is the client; its X-Forwarded-For is ignored."""
    assert client_address("198.51.100.4", ["203.0.113.9"], PROXIES) == "198.51.100.4"
    assert client_address("198.51.100.4", ["203.0.113.9"], ()) == "198.51.100.4"
    assert client_address("10.0.0.2", ["203.0.113.9"], ()) == "10.0.0.2", "none trusted by default"


def test_trusted_proxy_forwards_the_right_most_untrusted_entry() -> None:
    """Through proxies the right-most entry that is no proxy is the client (left: spoofable)."""
    assert client_address("10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"
    chain = ["1.2.3.4, 203.0.113.9", "10.1.1.1"]  # spoofed, client, inner proxy; two headers
    assert client_address("10.0.0.2", chain, PROXIES) == "203.0.113.9"
    assert client_address("10.0.0.2", ["10.3.3.3, 10.1.1.1"], PROXIES) == "10.3.3.3"
    assert client_address("10.0.0.2", [], PROXIES) == "10.0.0.2"
    assert client_address("10.0.0.2", ["garbage, 10.1.1.1"], PROXIES) == "10.1.1.1"
    assert client_address("10.0.0.2", ["2001:db8::1"], PROXIES) == "2001:db8::1"


def test_address_notations() -> None:
    """Ports, brackets and IPv4-mapped IPv6 are read as the address they stand for."""
    assert parse_address(" 203.0.113.9:4711 ") == ipaddress.ip_address("203.0.113.9")
    assert parse_address("[2001:db8::1]:443") == ipaddress.ip_address("2001:db8::1")
    assert parse_address("::ffff:10.0.0.2") == ipaddress.ip_address("10.0.0.2")
    assert parse_address("unknown") is None
    assert client_address("::ffff:10.0.0.2", ["203.0.113.9"], PROXIES) == "203.0.113.9"


@pytest.mark.parametrize("peer", [None, "", "not-an-ip"])
def test_unreadable_peer(peer: str | None) -> None:
    """A peer that is no address (a Unix socket) is used as it is, never trusted."""
    assert client_address(peer, ["203.0.113.9"], PROXIES) == (peer or "unknown")
