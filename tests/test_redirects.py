"""The redirect allow-list: same origin and whole path segments of the normalised path."""

from __future__ import annotations

import pytest

from service import errors
from service.redirects import check_redirect_url

BASE = "https://tokens.example.com"
ALLOWED = ["https://app.example.com/connected"]

REFUSED = [
    "https://app.example.com/connected-evil",
    "https://app.example.com/connectedx/cb",
    "https://app.example.com/connected/../../logout",
    "https://app.example.com/connected/..",
    "https://app.example.com/connected/%2e%2e/logout",
    "https://app.example.com/connected/%2E%2E/logout",
    "https://app.example.com/connected/.%2e/logout",
    "https://app.example.com/connected%2f..%2flogout",
    "https://app.example.com/connected%5c..%5clogout",
    "https://app.example.com/connected\\..\\logout",
    "https://app.example.com/connected;x/cb",
    "https://app.example.com/",
    "http://app.example.com/connected",
    "https://app.example.com:8443/connected",
    "https://app.example.com.evil.test/connected",
    "https://user@app.example.com/connected",
    "https://tokens.example.com.evil.test/",
]


@pytest.mark.parametrize("url", REFUSED)
def test_refused(url: str) -> None:
    """Lookalike segments, dot-segments escaping the prefix and disguised separators fail."""
    with pytest.raises(errors.RedirectUrlNotAllowed):
        check_redirect_url(url, BASE, ALLOWED)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://app.example.com/connected", None),
        ("https://app.example.com/connected/", None),
        ("https://app.example.com/connected/cb?x=1#top", None),
        ("https://APP.example.com:443/connected/cb", None),
        ("https://app.example.com/connected/a/../cb", "https://app.example.com/connected/cb"),
        ("https://app.example.com/connected/./cb", "https://app.example.com/connected/cb"),
        ("https://tokens.example.com/anything", None),
    ],
)
def test_allowed(url: str, expected: str | None) -> None:
    """Under the prefix (its origin, whole segments) passes, dot-segments resolved."""
    assert check_redirect_url(url, BASE, ALLOWED) == (expected or url)


def test_prefix_with_trailing_slash() -> None:
    """A prefix written with a trailing slash allows the same segments."""
    allowed = ["https://app.example.com/connected/"]
    assert check_redirect_url("https://app.example.com/connected/x", BASE, allowed)
    with pytest.raises(errors.RedirectUrlNotAllowed):
        check_redirect_url("https://app.example.com/connected-evil", BASE, allowed)
