"""Who consented: a verified id_token (JWKS cached, refetched once for a new kid) or userinfo.

Which claims may name the user is decided in service/oauth/claims.py.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from service import errors
from service.apps import App
from service.clock import Clock
from service.oauth.claims import (
    Identity,
    mailru_identity,
    microsoft_identity,
    subject_identity,
    verified_email,
)
from service.oauth.discovery import Discovery
from service.oauth.jose import JoseFailure, verify_id_token
from service.outbound.session import read_capped
from service.providers import GOOGLE_KINDS, MICROSOFT_KINDS
from service.redirects import with_query

JWKS_MAX_AGE_S = 3600.0
GOOGLE_ISSUERS = ("https://accounts.google.com", "accounts.google.com")
PROVIDER_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


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

        Microsoft: the verified id_token's tid/oid. Others: a verified id_token with a
        verified email is enough; otherwise userinfo is asked (it must describe the
        id_token's subject), and without a verified email the user is the `sub`.
        """
        if app.provider == "mailRu":
            return await self._mailru(app, access_token)
        claims: dict[str, Any] | None = None
        if id_token is not None and await self._can_verify(app):
            claims = await self.verify(app, id_token, nonce, access_token)
        if app.provider in MICROSOFT_KINDS:
            found = microsoft_identity(claims) if claims is not None else None
            if found is None:
                raise errors.IdentityUnavailable(
                    "Microsoft did not name the user's tenant and object id (tid, oid) in a "
                    "verifiable id_token; the app must ask for the openid scope"
                )
            return found
        issuer = _pin_issuer(app)
        if claims is not None and verified_email(claims):
            return _found(subject_identity(claims, None, issuer))
        url = await self.discovery.lookup(app, "userinfo_url")
        if url is None:
            if claims is not None:
                return _found(subject_identity(claims, None, issuer))
            raise errors.IdentityUnavailable("no verifiable id_token and no userinfo endpoint")
        info = await self._get_json(url, access_token, "userinfo")
        if claims is not None and info.get("sub") != claims.get("sub"):
            raise errors.IdentityUnavailable("userinfo describes another user than the id_token")
        return _found(subject_identity(claims, info, issuer))

    async def _mailru(self, app: App, access_token: str) -> Identity:
        """Mail.ru's userinfo takes the token as the `access_token` query parameter."""
        url = await self.discovery.lookup(app, "userinfo_url")
        if url is None:
            raise errors.IdentityUnavailable("the Mail.ru app has no userinfo endpoint")
        info = await self._get_json(with_query(url, access_token=access_token), None, "userinfo")
        found = mailru_identity(info, _pin_issuer(app))
        if found is None:
            raise errors.IdentityUnavailable("Mail.ru's userinfo named no email address and id")
        return found

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
    if app.provider in GOOGLE_KINDS and issuer == GOOGLE_ISSUERS[0]:
        return list(GOOGLE_ISSUERS)  # Google's id_tokens use either form
    return [issuer] if issuer else []


def _pin_issuer(app: App) -> str | None:
    issuer = app.endpoints.issuer
    return issuer if issuer and "{" not in issuer else None


def _found(identity: Identity | None) -> Identity:
    if identity is None:
        raise errors.IdentityUnavailable("the provider did not say who the user is (no sub)")
    return identity
