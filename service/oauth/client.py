"""Calls to a provider with the app's credentials: refresh, code exchange, revocation."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

import aiohttp
import orjson

from service.apps import App
from service.clock import Clock
from service.oauth.client_auth import ClientCredential, attach
from service.oauth.discovery import Discovery
from service.outbound.session import read_capped
from service.timing import lifetime_s, refresh_expiry_ms

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
REVOKE_TIMEOUT_S = 5.0  # revocation runs inline in DELETE: never wait long


@dataclass(frozen=True)
class Granted:
    """A successful token response, normalised."""

    access_token: str
    refresh_token: str | None
    lifetime_s: int
    expires_at_ms: int
    scopes: list[str] | None
    refresh_expires_at_ms: int | None = None  # from refresh_token_expires_in, when given


@dataclass(frozen=True)
class Failure:
    """A failed refresh: transient (retry), permanent (re-consent) or app (credentials)."""

    kind: FailureKind
    error: str
    description: str | None = None
    status: int | None = None
    reason: str | None = None
    retry_after_s: float | None = None
    sent: bool = field(default=False, compare=False)  # the request may have reached the provider

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


@dataclass(frozen=True)
class CodeGrant:
    """A successful authorization_code grant: the tokens and the id_token when one came."""

    granted: Granted
    id_token: str | None


@dataclass(frozen=True)
class Revocation:
    """The outcome of revoking a refresh token at the provider."""

    revoked: bool
    reason: str | None = None
    description: str | None = None


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


def parse_granted(body: object, sent_at_ms: int) -> RefreshResult:
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
        refresh_expires_at_ms=refresh_expiry_ms(body.get("refresh_token_expires_in"), sent_at_ms),
    )


class OAuthClient:
    """Calls providers' token and revocation endpoints with the app's client credentials."""

    def __init__(self, http: aiohttp.ClientSession, clock: Clock, timeout_s: float) -> None:
        self.http, self.clock = http, clock
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        # A refresh bounds only getting a connection (pool wait + connect): once sent, its
        # answer is awaited as long as the caller holds the account's lock (HeldLock).
        self.refresh_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeout_s, sock_connect=timeout_s
        )
        self.revoke_timeout = aiohttp.ClientTimeout(total=min(timeout_s, REVOKE_TIMEOUT_S))
        self.discovery = Discovery(http, self.timeout)

    async def refresh(
        self,
        app: App,
        credential: ClientCredential | None,
        refresh_token: str,
        scope: str | None = None,
    ) -> RefreshResult:
        """Run the refresh_token grant; never raises for provider or network trouble.

        `scope` only for a per-resource or down-scoped token (service/resources.py).
        """
        # Else no `scope`: the refreshed token carries what the grant holds. Microsoft would
        # refuse a refresh asking for more than was granted (a migrated grant, changed extra
        # scopes), and EmailEngine sends none on an Outlook refresh either.
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        if scope is not None:
            form["scope"] = scope
        return await self._granting(app, credential, form, self.refresh_timeout)

    async def exchange_code(
        self,
        app: App,
        credential: ClientCredential | None,
        code: str,
        verifier: str,
        redirect_uri: str,
    ) -> CodeGrant | Failure:
        """Run the authorization_code grant with the PKCE verifier; never raises."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": verifier,
        }
        sent_at = self.clock.now_ms()
        answer = await self._token_call(app, credential, form, self.timeout)
        if isinstance(answer, Failure):
            return answer
        status, body, retry_after = answer
        if status != 200:
            return classify(status, body, retry_after)
        granted = parse_granted(body, sent_at)
        if isinstance(granted, Failure):
            return granted
        id_token = body.get("id_token") if isinstance(body, dict) else None
        return CodeGrant(granted, id_token if isinstance(id_token, str) else None)

    async def revoke(
        self, app: App, credential: ClientCredential | None, refresh_token: str
    ) -> Revocation:
        """Revoke a refresh token (RFC 7009), once, with a short timeout; never raises."""
        try:
            url = await self.discovery.endpoint(app, "revocation_url")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            return Revocation(False, "discovery", type(exc).__name__)
        if url is None:
            return Revocation(False, "unsupported", "the provider offers no revocation endpoint")
        form = {"token": refresh_token, "token_type_hint": "refresh_token"}
        try:
            form = attach(app.client_id, credential, form, url)
            status, body, _ = await self._post(url, form, self.revoke_timeout)
        except TimeoutError:
            return Revocation(False, "timeout", "the provider did not answer in time")
        except (aiohttp.ClientError, OSError) as exc:
            return Revocation(False, "network", type(exc).__name__)
        if status == 200:
            return Revocation(True)
        error = body.get("error") if isinstance(body, dict) else None
        return Revocation(False, str(error or f"http_{status}"), f"the provider answered {status}")

    async def grant(self, app: App, form: dict[str, str]) -> RefreshResult:
        """Run a grant whose form carries its own credentials; never raises.

        For the JWT bearer grant (service/grants.py): the assertion is the credential.
        """
        return await self._granting(app, None, form, self.timeout, authenticated=False)

    async def client_grant(
        self, app: App, credential: ClientCredential | None, form: dict[str, str]
    ) -> RefreshResult:
        """Run a grant authenticated as the app (client credentials); never raises."""
        return await self._granting(app, credential, form, self.timeout)

    async def _granting(
        self,
        app: App,
        credential: ClientCredential | None,
        form: dict[str, str],
        limits: aiohttp.ClientTimeout,
        *,
        authenticated: bool = True,
    ) -> RefreshResult:
        """A token request whose 200 answer is a grant: the tokens, or the classified refusal."""
        sent_at = self.clock.now_ms()
        answer = await self._token_call(app, credential, form, limits, authenticated)
        if isinstance(answer, Failure):
            return answer
        status, body, retry_after = answer
        if status == 200:
            return parse_granted(body, sent_at)
        return classify(status, body, retry_after)

    async def _token_call(
        self,
        app: App,
        credential: ClientCredential | None,
        form: dict[str, str],
        limits: aiohttp.ClientTimeout,
        authenticated: bool = True,
    ) -> tuple[int, object, str | None] | Failure:
        """POST to the app's token endpoint; a network failure drops a discovered endpoint.

        A failure says whether the request may have reached the provider (`sent`): not when
        discovery, waiting for a connection or connecting failed.
        """
        sent = False
        try:
            url = await self.discovery.endpoint(app, "token_url")
            if url is None:
                return Failure("transient", "no_token_url", "the app has no token URL")
            sent = True
            if authenticated:  # else the form authenticates itself (a JWT bearer assertion)
                form = attach(app.client_id, credential, form, url)
            return await self._post(url, form, limits)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            failure = Failure("transient", "network", type(exc).__name__)
            if isinstance(exc, TimeoutError):
                failure = Failure("transient", "timeout", "no connection to the provider in time")
        except TimeoutError:
            failure = Failure(
                "transient", "timeout", "the provider did not answer in time", sent=sent
            )
        except (aiohttp.ClientError, OSError) as exc:
            failure = Failure("transient", "network", type(exc).__name__, sent=sent)
        if self.discovery.discovered(app, "token_url"):
            self.discovery.forget(app.endpoints.issuer)
        return failure

    async def _post(
        self, url: str, form: dict[str, str], limits: aiohttp.ClientTimeout
    ) -> tuple[int, object, str | None]:
        async with self.http.post(
            url,
            data=form,
            timeout=limits,
            allow_redirects=False,
            headers={"Accept": "application/json"},
        ) as response:
            body = _json_or_none(await read_capped(response))
            return response.status, body, response.headers.get("Retry-After")


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


__all__ = [
    "CodeGrant",
    "Failure",
    "Granted",
    "OAuthClient",
    "RefreshResult",
    "Revocation",
    "classify",
    "parse_granted",
]
