"""Where a user may be sent after consent: TOKENBROKER_BASE_URL or an allowed prefix only."""

from __future__ import annotations

from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from service import errors

DEFAULT_PORTS = {"http": 80, "https": 443}


def check_redirect_url(url: str, base_url: str, allowed: list[str]) -> str:
    """Return `url` when it is under base_url or an allowedRedirectUrls prefix.

    The origin (scheme, host, port) must be equal and the path must start with the prefix's
    path, so `https://app.example.com.evil.test/` never passes for `https://app.example.com`.
    Raise RedirectUrlNotAllowed otherwise (no open redirect).
    """
    target = _parts(url)
    if target is not None and any(_under(target, prefix) for prefix in [base_url, *allowed]):
        return url
    raise errors.RedirectUrlNotAllowed(
        "redirectUrl must be on TOKENBROKER_BASE_URL or start with an allowedRedirectUrls entry",
        details={"field": "redirectUrl"},
    )


def with_query(url: str, **params: str) -> str:
    """Return `url` with `params` added to (or replacing those in) its query string."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    query.extend(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _parts(url: str) -> SplitResult | None:
    if any(ch.isspace() or ord(ch) < 0x20 or ch == "\\" for ch in url):
        return None
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    return parts


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    host = (parts.hostname or "").lower()
    return parts.scheme, host, parts.port or DEFAULT_PORTS[parts.scheme]


def _under(target: SplitResult, prefix: str) -> bool:
    base = _parts(prefix)
    if base is None or _origin(base) != _origin(target):
        return False
    return (target.path or "/").startswith(base.path or "/")
