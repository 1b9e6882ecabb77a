"""Where a user may be sent after consent: TOKENBROKER_BASE_URL or an allowed prefix only."""

from __future__ import annotations

import re
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from service import errors

DEFAULT_PORTS = {"http": 80, "https": 443}
ENCODED_SEPARATORS = re.compile(r"%(2e|2f|5c)", re.IGNORECASE)  # ".", "/", "\\" in disguise


def check_redirect_url(url: str, base_url: str, allowed: list[str]) -> str:
    """Return `url`, dot-segments resolved, when it is under base_url or an allowed prefix.

    The origin (scheme, host, port) must be equal and the path's segments must begin with
    the prefix path's whole segments, so neither `https://app.example.com.evil.test/` nor
    `…/connected-evil` passes for `https://app.example.com/connected`, and `…/connected/../x`
    is judged as `/x`. Encoded dots, slashes and backslashes are refused outright.
    Raise RedirectUrlNotAllowed otherwise (no open redirect).
    """
    target = _parts(url)
    if target is not None and any(_under(target, prefix) for prefix in [base_url, *allowed]):
        return urlunsplit(target)
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
    if ENCODED_SEPARATORS.search(parts.path):
        return None
    return parts._replace(path=_remove_dot_segments(parts.path))


def _remove_dot_segments(path: str) -> str:
    """The path with "." and ".." segments resolved (RFC 3986 5.2.4); never above the root."""
    out: list[str] = []
    segments = path.split("/")
    for n, segment in enumerate(segments):
        last = n == len(segments) - 1
        if segment == "..":
            if len(out) > 1:
                out.pop()
            if last:
                out.append("")
        elif segment == ".":
            if last:
                out.append("")
        else:
            out.append(segment)
    return "/".join(out)


def _segments(path: str) -> list[str]:
    """A path's segments without the empty one that a trailing slash leaves."""
    segments = (path or "/").split("/")[1:]
    return segments[:-1] if segments and segments[-1] == "" else segments


def _origin(parts: SplitResult) -> tuple[str, str, int]:
    host = (parts.hostname or "").lower()
    return parts.scheme, host, parts.port or DEFAULT_PORTS[parts.scheme]


def _under(target: SplitResult, prefix: str) -> bool:
    base = _parts(prefix)
    if base is None or _origin(base) != _origin(target):
        return False
    prefix_segments = _segments(base.path)
    return _segments(target.path)[: len(prefix_segments)] == prefix_segments
