"""A consent bound to the browser that started it: a random cookie, its hash in the state.

The cookie holds a random value (the binding). Starting a consent stores the binding's
SHA-256 in the state record; the callback is accepted only from a browser that presents the
binding. A hosted link's page carries a form token, an HMAC of the link keyed by the
binding, so only a browser that was shown the page can start that link's consent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from urllib.parse import urlsplit

COOKIE = "tb_consent"
MAX_AGE_S = 900  # covers the 10 min of a state plus the time spent on a hosted link's page
_FORMAT = re.compile(r"[A-Za-z0-9_-]{43}")  # 32 random bytes, base64url without padding


def new_binding() -> str:
    """A fresh random binding (the cookie's value)."""
    return secrets.token_urlsafe(32)


def usable(value: str | None) -> str | None:
    """The cookie's value when it is one of ours in form, else None."""
    return value if value is not None and _FORMAT.fullmatch(value) else None


def digest(binding: str) -> str:
    """What the state record keeps of a binding: its SHA-256, hex."""
    return hashlib.sha256(binding.encode("ascii")).hexdigest()


def matches(binding: str | None, stored_digest: object) -> bool:
    """True when the browser's binding is the one the state was started with."""
    if binding is None or not isinstance(stored_digest, str):
        return False
    return hmac.compare_digest(digest(binding), stored_digest)


def form_token(binding: str, link_id: str) -> str:
    """The token of a hosted link's start form, for this browser."""
    mac = hmac.new(binding.encode("ascii"), f"oauth-start:{link_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")


def form_token_ok(binding: str | None, link_id: str, presented: object) -> bool:
    """True when `presented` is the start form's token for this browser and link."""
    if binding is None or not isinstance(presented, str):
        return False
    return hmac.compare_digest(form_token(binding, link_id).encode(), presented.encode())


def cookie_path(base_url: str) -> str:
    """The cookie's Path: the /oauth routes under TOKENBROKER_BASE_URL."""
    return urlsplit(base_url).path.rstrip("/") + "/oauth"
