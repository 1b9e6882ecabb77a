"""Checks for URLs that the service will call (issuers, endpoints, webhooks)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from service import errors


def check_outbound_url(value: str, field: str, *, allow_private: bool) -> str:
    """Return `value` if it is an http(s) URL we may call; raise InvalidInput otherwise."""
    try:
        parts = urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise errors.InvalidInput(f"{field} is not a valid URL", details={"field": field}) from None
    if parts.scheme not in ("http", "https") or not host:
        raise errors.InvalidInput(f"{field} must be an http(s) URL", details={"field": field})
    if parts.username or parts.password:
        raise errors.InvalidInput(f"{field} must not carry credentials", details={"field": field})
    if not allow_private and _is_private_host(host):
        raise errors.InvalidInput(
            f"{field} points at a loopback or private address "
            "(allowed only with TOKENBROKER_ALLOW_PRIVATE_URLS=true)",
            details={"field": field},
        )
    return value


def _is_private_host(host: str) -> bool:
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
        or address.is_multicast
    )
