"""An app's provider endpoints: configured or built in, else discovered from its issuer."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson

from service import errors
from service.apps import App
from service.outbound.session import read_capped

MAX_AGE_S = 3600.0  # a discovery document is fetched again after this, or after a failure
# App endpoint field -> the discovery document's member (OpenID Connect Discovery, RFC 8414).
MEMBERS = {
    "authorization_url": "authorization_endpoint",
    "token_url": "token_endpoint",
    "userinfo_url": "userinfo_endpoint",
    "jwks_url": "jwks_uri",
    "revocation_url": "revocation_endpoint",
}


class Discovery:
    """Fetches issuers' OpenID configurations; cached per process, dropped on failure."""

    def __init__(self, http: aiohttp.ClientSession, timeout: aiohttp.ClientTimeout) -> None:
        self.http, self.timeout = http, timeout
        self._documents: dict[str, tuple[float, dict[str, Any]]] = {}

    async def endpoint(self, app: App, name: str) -> str | None:
        """The app's endpoint `name` (a field of Endpoints): its own, else discovered."""
        configured = getattr(app.endpoints, name)
        if configured:
            return str(configured)
        issuer = app.endpoints.issuer
        if not issuer or app.provider != "oidc":
            return None
        value = (await self.document(issuer)).get(MEMBERS[name])
        return value if isinstance(value, str) and value else None

    async def lookup(self, app: App, name: str) -> str | None:
        """endpoint(), with provider trouble turned into ProviderUnavailable (and forgotten)."""
        try:
            return await self.endpoint(app, name)
        except (TimeoutError, aiohttp.ClientError, OSError):
            self.forget(app.endpoints.issuer)
            raise errors.ProviderUnavailable(
                "the provider's discovery document could not be read"
            ) from None

    def discovered(self, app: App, name: str) -> bool:
        """True when endpoint `name` of the app comes from discovery (not configured)."""
        return not getattr(app.endpoints, name) and bool(app.endpoints.issuer)

    def forget(self, issuer: str | None) -> None:
        """Drop the cached document, so that the next call discovers again (after a failure)."""
        if issuer:
            self._documents.pop(issuer, None)

    async def document(self, issuer: str) -> dict[str, Any]:
        """The issuer's OpenID configuration (raises aiohttp.ClientError when unusable)."""
        cached = self._documents.get(issuer)
        if cached is not None and time.monotonic() - cached[0] < MAX_AGE_S:
            return cached[1]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with self.http.get(url, timeout=self.timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"discovery answered {response.status}")
            raw = await read_capped(response)
        try:
            meta = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise aiohttp.ClientError("discovery document is not JSON") from None
        if not isinstance(meta, dict) or not isinstance(meta.get("token_endpoint"), str):
            raise aiohttp.ClientError("discovery document without token_endpoint")
        if str(meta.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
            raise aiohttp.ClientError("discovery document names another issuer")
        self._documents[issuer] = (time.monotonic(), meta)
        return meta
