"""Checks for URLs that the service will call (issuers, endpoints, webhooks), when saved.

Early feedback only: a name is judged when connecting (service/outbound/session.py), by the same
rules (service/outbound/addresses.py) applied to the addresses it resolves to.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from service import errors
from service.outbound.addresses import host_refusal


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
    reason = None if allow_private else host_refusal(host)
    if reason is not None:
        raise errors.InvalidInput(
            f"{field} points at a loopback or private address "
            "(allowed only with TOKENBROKER_ALLOW_PRIVATE_URLS=true)",
            details={"field": field, "reason": reason},
        )
    return value
