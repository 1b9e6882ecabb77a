"""Which addresses the service may call: public unicast only, however a host writes them."""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
CGNAT = ipaddress.ip_network("100.64.0.0/10")  # shared address space (RFC 6598)
NAT64 = ipaddress.ip_network("64:ff9b::/96")  # the last 32 bits are an IPv4 address (RFC 6052)
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")  # local-use translation (RFC 8215)
_NUMBER = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


def refusal(address: IPAddress) -> str | None:
    """Why the service must not connect to `address` (a short word), or None when it may.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the
    IPv4 address it leads to.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return refusal(embedded)
        if address in LOCAL_NAT64:
            return "reserved"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if isinstance(address, ipaddress.IPv4Address) and address in CGNAT:
        return "shared (CGNAT)"
    if address.is_private:
        return "private"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "non-public"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def host_address(host: str) -> IPAddress | None:
    """The address a URL's host names literally, or None when it is a DNS name.

    Besides dotted quads and IPv6, the numeric forms that the system resolver also takes
    are understood: `127.1`, `0x7f000001`, `2130706433`, `0`, `0177.0.0.1`. Raises
    ValueError for a number that is no address (e.g. `256.1.1.1`).
    """
    text = host if ":" in host else host.rstrip(".")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        if ":" in text:
            raise
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_NUMBER.fullmatch(part) for part in parts):
        return None
    *head, last = [_number(part) for part in parts]
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(parts)):
        raise ValueError(f"{host!r} is not an IPv4 address")
    value = last
    for i, n in enumerate(head):
        value |= n << (8 * (3 - i))
    return ipaddress.IPv4Address(value)


def _number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)  # ValueError for a digit 8 or 9, as the resolver refuses it
    return int(part)


def host_refusal(host: str) -> str | None:
    """Why a URL's host must not be called, judged from the text alone (names pass).

    `localhost` and its subdomains always resolve to loopback (RFC 6761); any other name
    is judged when connecting, by the addresses it resolves to.
    """
    name = host.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return "loopback"
    try:
        address = host_address(host)
    except ValueError:
        return "invalid"
    return refusal(address) if address is not None else None
