"""Who consented: a verified id_token (JWKS cached, refetched once for a new kid) or userinfo."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from service import errors
from service.apps import App
from service.clock import Clock
from service.discovery import Discovery
from service.jws import JoseFailure, verify_id_token
from service.outbound import read_capped

JWKS_MAX_AGE_S = 3600.0
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
NAME_CLAIMS = ("email", "preferred_username", "upn")  # before sub, which is opaque
PROVIDER_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


@dataclass(frozen=True)
class Identity:
    """The user behind a grant, and where we learned it."""

    user: str
    subject: str | None
    source: str  # "id_token" or "userinfo"


class IdentityVerifier:
    """Verifies id_tokens against the provider's JWKS, else asks the userinfo endpoint."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        discovery: Discovery,
        clock: Clock,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        self.http, self.discovery, self.clock, self.timeout = http, discovery, clock, timeout
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    async def identify(
        self, app: App, id_token: str | None, access_token: str, nonce: str
    ) -> Identity:
        """The user of a fresh grant; raise IdTokenInvalid or IdentityUnavailable.

        A verified id_token naming an email (or username) is enough; otherwise userinfo is
        asked, and it must describe the id_token's subject.
        """
        claims: dict[str, Any] | None = None
        if id_token is not None and await self._can_verify(app):
            claims = await self.verify(app, id_token, nonce, access_token)
            user = _user_of(claims, NAME_CLAIMS)
            if user:
                return Identity(user, _text(claims.get("sub")), "id_token")
        url = await self.discovery.lookup(app, "userinfo_url")
        if url is None:
            subject = _text(claims.get("sub")) if claims else None
            if subject:
                return Identity(subject, subject, "id_token")
            raise errors.IdentityUnavailable("no verifiable id_token and no userinfo endpoint")
        info = await self._get_json(url, access_token, "userinfo")
        if claims is not None and info.get("sub") != claims.get("sub"):
            raise errors.IdentityUnavailable("userinfo describes another user than the id_token")
        user = _user_of(info, (*NAME_CLAIMS, "sub"))
        if not user:
            raise errors.IdentityUnavailable("the provider did not say who the user is")
        return Identity(user, _text(info.get("sub")), "userinfo")

    async def verify(
        self, app: App, id_token: str, nonce: str, access_token: str | None
    ) -> dict[str, Any]:
        """The claims of a valid id_token for this app and flow; raise IdTokenInvalid."""
        issuers = _issuers(app)
        jwks_url = await self.discovery.lookup(app, "jwks_url")
        if not issuers or jwks_url is None:
            raise errors.IdTokenInvalid("the app has no issuer and JWKS to verify an id_token")
        for refetch in (False, True):
            jwks = await self._keys(jwks_url, refetch)
            try:
                return verify_id_token(
                    id_token,
                    jwks,
                    client_id=app.client_id,
                    issuers=issuers,
                    nonce=nonce,
                    access_token=access_token,
                    now_ms=self.clock.now_ms(),
                )
            except JoseFailure as exc:
                if exc.reason == "unknownKey" and not refetch:
                    continue  # the provider may have rotated its keys: fetch them once more
                raise errors.IdTokenInvalid(str(exc), details={"reason": exc.reason}) from None
        raise AssertionError("unreachable")  # pragma: no cover

    async def _can_verify(self, app: App) -> bool:
        return bool(_issuers(app)) and await self.discovery.lookup(app, "jwks_url") is not None

    async def _keys(self, url: str, refetch: bool) -> dict[str, Any]:
        cached = self._jwks.get(url)
        if cached is not None and not refetch and time.monotonic() - cached[0] < JWKS_MAX_AGE_S:
            return cached[1]
        keys = await self._get_json(url, None, "JWKS")
        self._jwks[url] = (time.monotonic(), keys)
        return keys

    async def _get_json(self, url: str, bearer: str | None, what: str) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if bearer is not None:
            headers["Authorization"] = f"Bearer {bearer}"
        try:
            async with self.http.get(
                url, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                raw, status = await read_capped(response), response.status
        except PROVIDER_ERRORS as exc:
            raise errors.ProviderUnavailable(
                f"the provider's {what} endpoint could not be reached",
                details={"error": type(exc).__name__},
            ) from None
        try:
            body = orjson.loads(raw) if status == 200 else None
        except orjson.JSONDecodeError:
            body = None
        if not isinstance(body, dict):
            raise errors.IdentityUnavailable(
                f"the provider's {what} endpoint answered {status} without a JSON object"
            )
        return body


def _issuers(app: App) -> list[str]:
    issuer = app.endpoints.issuer
    if app.provider == "google" and issuer == GOOGLE_ISSUERS[0]:
        return list(GOOGLE_ISSUERS)  # Google's id_tokens use either form
    return [issuer] if issuer else []


def _user_of(claims: dict[str, Any], names: tuple[str, ...]) -> str | None:
    return next((claims[name] for name in names if isinstance(claims.get(name), str)), None)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None
