"""The provider side of a refresh: the refresh_token grant and how its answer is classified."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import orjson

from service.apps import App
from service.clock import Clock
from service.expiry import lifetime_s

FailureKind = Literal["transient", "permanent", "app"]
AADSTS = re.compile(r"AADSTS(\d+)")
REAUTH_REASONS = {
    70008: "expired",
    700082: "expired",
    700084: "expired",
    70000: "invalidGrant",
    50173: "revoked",
    70043: "signInFrequency",
    65001: "consentRequired",
    50076: "interactionRequired",
    50078: "interactionRequired",
    50079: "interactionRequired",
    53003: "conditionalAccess",
}
APP_CODES = {7000215, 7000222, 700016, 7000218}
THROTTLE_CODES = {50196, 90055}


@dataclass(frozen=True)
class Granted:
    """A successful token response, normalised."""

    access_token: str
    refresh_token: str | None
    lifetime_s: int
    expires_at_ms: int
    scopes: list[str] | None


@dataclass(frozen=True)
class Failure:
    """A failed refresh: transient (retry), permanent (re-consent) or app (credentials)."""

    kind: FailureKind
    error: str
    description: str | None = None
    status: int | None = None
    reason: str | None = None
    retry_after_s: float | None = None

    def details(self) -> dict[str, Any]:
        """The provider's answer as API error details (never any token)."""
        body: dict[str, Any] = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        if self.status is not None:
            body["status"] = self.status
        if self.reason:
            body["reason"] = self.reason
        return body


RefreshResult = Granted | Failure


def classify(status: int, body: object, retry_after: str | None) -> Failure:
    """Classify a non-success answer of a token endpoint (pure)."""
    data = body if isinstance(body, dict) else {}
    error = str(data.get("error") or f"http_{status}")
    description = data.get("error_description")
    description = str(description)[:500] if description is not None else None
    codes = _aad_codes(data, description)
    wait = _retry_after_s(retry_after)
    if status == 429 or status >= 500 or codes & THROTTLE_CODES:
        return Failure("transient", error, description, status, retry_after_s=wait)
    if error in ("invalid_client", "unauthorized_client", "unsupported_grant_type") or (
        codes & APP_CODES
    ):
        return Failure("app", error, description, status, reason="appCredentials")
    if error in ("invalid_grant", "interaction_required", "consent_required", "invalid_scope"):
        reason = next((REAUTH_REASONS[c] for c in sorted(codes) if c in REAUTH_REASONS), None)
        if reason is None and data.get("error_subtype") == "invalid_rapt":
            reason = "sessionPolicy"
        if reason is None:
            reason = "consentRequired" if error != "invalid_grant" else "invalidGrant"
        return Failure("permanent", error, description, status, reason=reason)
    return Failure("transient", error, description, status, retry_after_s=wait)


def parse_granted(body: object, sent_at_ms: int, old_refresh_token: str) -> RefreshResult:
    """Turn a 200 token response into Granted, or a transient Failure if it is unusable."""
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        return Failure("transient", "invalid_response", "token response without access_token")
    life = lifetime_s(body.get("expires_in"))
    new_refresh = body.get("refresh_token")
    scope = body.get("scope")
    return Granted(
        access_token=body["access_token"],
        refresh_token=new_refresh if isinstance(new_refresh, str) and new_refresh else None,
        lifetime_s=life,
        expires_at_ms=sent_at_ms + life * 1000,
        scopes=scope.split() if isinstance(scope, str) else None,
    )


class OAuthClient:
    """Calls providers' token endpoints with the app's client credentials."""

    def __init__(self, http: aiohttp.ClientSession, clock: Clock, timeout_s: float) -> None:
        self.http, self.clock = http, clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._discovered: dict[str, dict[str, Any]] = {}

    async def refresh(self, app: App, secret: str | None, refresh_token: str) -> RefreshResult:
        """Run the refresh_token grant; never raises for provider or network trouble."""
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        form["client_id"] = app.client_id
        if secret is not None:
            form["client_secret"] = secret
        if app.provider == "microsoft":
            form["scope"] = " ".join(app.scopes)
        sent_at = self.clock.now_ms()
        try:
            token_url = await self.token_url(app)
            async with self.http.post(
                token_url,
                data=form,
                timeout=self.timeout,
                allow_redirects=False,
                headers={"Accept": "application/json"},
            ) as response:
                raw = await response.read()
                body = _json_or_none(raw)
                if response.status == 200:
                    return parse_granted(body, sent_at, refresh_token)
                return classify(response.status, body, response.headers.get("Retry-After"))
        except TimeoutError:
            return Failure("transient", "timeout", "the provider did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return Failure("transient", "network", type(exc).__name__)

    async def token_url(self, app: App) -> str:
        """The app's token URL, discovered from its issuer when not configured."""
        url = app.endpoints.token_url
        if url:
            return url
        meta = await self.discover(app.endpoints.issuer or "")
        return str(meta["token_endpoint"])

    async def discover(self, issuer: str) -> dict[str, Any]:
        """Fetch (once, then from memory) the issuer's OpenID configuration."""
        if issuer in self._discovered:
            return self._discovered[issuer]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        async with self.http.get(url, timeout=self.timeout, allow_redirects=False) as response:
            if response.status != 200:
                raise aiohttp.ClientError(f"discovery answered {response.status}")
            meta = _json_or_none(await response.read())
        if not isinstance(meta, dict) or not isinstance(meta.get("token_endpoint"), str):
            raise aiohttp.ClientError("discovery document without token_endpoint")
        self._discovered[issuer] = meta
        return meta


def _json_or_none(raw: bytes) -> object:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None


def _aad_codes(data: dict[str, Any], description: str | None) -> set[int]:
    codes = {int(c) for c in data.get("error_codes", []) if isinstance(c, int)}
    if description:
        codes |= {int(m) for m in AADSTS.findall(description)}
    return codes


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, min(float(value), 3600.0))
    except ValueError:
        return None


__all__ = ["Failure", "Granted", "OAuthClient", "RefreshResult", "classify", "parse_granted"]
