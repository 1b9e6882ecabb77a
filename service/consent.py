"""The consent flow: a consent URL with a single-use state and PKCE, and the callback's checks."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import structlog
from redis.asyncio import Redis

from service import errors
from service.account_record import F
from service.accounts import AccountStore, AccountWrite
from service.apps import App, AppStore
from service.clock import Clock
from service.config import Config
from service.consent_state import ConsentStates
from service.credential_retry import with_credentials
from service.crypto.cipher import Cipher
from service.grant_deadline import at_grant
from service.oauth.claims import (
    EXPECTED_USER_FIELD,
    PIN_FIELDS,
    Identity,
    check_identity,
    identity_fields,
)
from service.oauth.client import Failure, Granted, OAuthClient
from service.oauth.identity import IdentityVerifier
from service.oauth.jose import Signer
from service.providers import SERVICE_KINDS, consent_params, consent_scopes, missing_scopes
from service.redirects import with_query
from service.store.keys import Keys
from service.timing import next_refresh_ms
from service.webhooks.events import wanted_event

log = structlog.get_logger("consent")


def require_consentable(app: App) -> None:
    """Refuse a consent for a disabled app or a service-account (application-only) app."""
    if not app.enabled:
        raise errors.AppNotFound(f"the OAuth2 app {app.id!r} is disabled")
    if app.provider in SERVICE_KINDS:
        raise errors.ProviderTypeUnsupported(
            f"{app.provider} apps take no interactive consent (application-only access)"
        )


@dataclass(frozen=True)
class ConsentRequest:
    """What one consent is for: the account, the app and where the user lands afterwards."""

    account: str
    app: str
    redirect_url: str | None = None
    expected_user: str | None = None
    name: str | None = None
    email: str | None = None  # the mailbox address kept on the account (EmailEngine's `email`)
    delegated: bool = False  # a shared mailbox (Microsoft): `email` is its address

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ConsentRequest:
        """Rebuild a request stored with asdict()."""
        return cls(
            account=str(data["account"]),
            app=str(data["app"]),
            redirect_url=data.get("redirect_url"),
            expected_user=data.get("expected_user"),
            name=data.get("name"),
            email=data.get("email"),
            delegated=bool(data.get("delegated")),
        )


@dataclass(frozen=True)
class Connected:
    """A finished consent: the account saved, new or existing, and where the user goes."""

    account: str
    state: str
    redirect_url: str | None


class CallbackError(Exception):
    """A refused callback: the error to show and where the user may go from there.

    `redirect_url` when one is known; `retry` the hosted link the consent came from when
    the user may use it again (set `retry_url` to its URL once it is restored).
    """

    def __init__(
        self,
        error: errors.ApiError,
        redirect_url: str | None,
        retry: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(error.message)
        self.error, self.redirect_url, self.retry = error, redirect_url, retry
        self.retry_url: str | None = None


def code_challenge(verifier: str) -> str:
    """PKCE S256: BASE64URL(SHA256(verifier)) without padding (RFC 7636)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class ConsentFlow:
    """Starts consents (state in Redis, PKCE, nonce) and finishes them at the callback."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        stores: tuple[AppStore, AccountStore],
        oauth: OAuthClient,
        identity: IdentityVerifier,
        crypto: tuple[Signer, Cipher],
        clock: Clock,
        config: Config,
    ) -> None:
        self.redis, self.keys, self.oauth, self.identity = redis, keys, oauth, identity
        (self.apps, self.accounts), (self.signer, self.cipher) = stores, crypto
        self.clock, self.config = clock, config
        self.states = ConsentStates(redis, keys, self.signer, clock)

    async def ready(self, request: ConsentRequest) -> None:
        """Raise what start() would for `request` (no app, no authorization URL, other app)."""
        await self._authorization_url(await self.apps.require(request.app))
        await self._same_app(request)

    async def _same_app(self, request: ConsentRequest) -> None:
        """An existing account is re-consented on its own app only (save refuses it too)."""
        existing = await self.accounts.get(request.account)
        if existing is not None and existing.app != request.app:
            raise errors.AccountAppMismatch(
                f"account {request.account!r} belongs to app {existing.app!r}; "
                "delete it to connect it anew",
                details={"app": existing.app},
            )

    async def start(
        self, request: ConsentRequest, binding: str, link: dict[str, Any] | None = None
    ) -> str:
        """Store a single-use state for `request` and return the provider's consent URL.

        Only the browser holding `binding` (service/binding.py) can finish the consent.
        `link` describes the hosted link it came from (HostedLinks.retry_info), given back
        when the user backs out at the provider so that the link can be used again.
        """
        app = await self.apps.require(request.app)
        require_consentable(app)
        authorize_url = await self._authorization_url(app)
        await self._same_app(request)
        nonce, verifier, oidc_nonce = (secrets.token_urlsafe(n) for n in (24, 48, 24))
        record = {
            "request": asdict(request),
            "nonce": oidc_nonce,
            "verifier": self.cipher.encrypt(verifier, f"state:{nonce}:verifier"),
            **({"link": link} if link else {}),
        }
        state = await self.states.put(nonce, record, binding, request.redirect_url)
        existing = await self.accounts.get(request.account)
        hint = request.expected_user or (existing.user if existing and existing.user else None)
        scopes = consent_scopes(app.provider, app.scopes)
        params = {
            "response_type": "code",
            "client_id": app.client_id,
            "redirect_uri": app.callback_url(self.config.base_url),
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": code_challenge(verifier),
            "code_challenge_method": "S256",
            **consent_params(app.provider, scopes, hint),
        }
        if "openid" in scopes:
            params["nonce"] = oidc_nonce
        return with_query(authorize_url, **params)

    async def finish(self, query: Mapping[str, str], binding: str | None) -> Connected:
        """Check the provider's answer and save the account; raise CallbackError.

        `binding` is the browser's binding cookie (None: it sent none).
        """
        redirect_url: str | None = None
        retry: dict[str, Any] | None = None
        try:
            claims = self.states.claims(query.get("state"))
            redirect_url = claims.get("r") if isinstance(claims.get("r"), str) else None
            record = await self.states.take(claims, binding)
            request = ConsentRequest.from_dict(record["request"])
            if "error" in query:
                retry = record.get("link")  # nothing was granted: the link may be used again
                raise _denied(query)
            return await self._complete(request, record, str(claims["n"]), query)
        except errors.ApiError as exc:
            log.info("consent_refused", code=exc.code)
            raise CallbackError(exc, redirect_url, retry) from None

    async def _complete(
        self, request: ConsentRequest, record: dict[str, Any], nonce: str, query: Mapping[str, str]
    ) -> Connected:
        code = query.get("code")
        if not code:
            raise errors.InvalidState("the provider's answer carries no authorization code")
        app = await self.apps.require(request.app)
        _check_issuer(app, query.get("iss"))
        verifier = self.cipher.decrypt(record["verifier"], f"state:{nonce}:verifier")
        redirect_uri = app.callback_url(self.config.base_url)
        result = await with_credentials(
            self.apps,
            app,
            lambda credential: self.oauth.exchange_code(
                app, credential, code, verifier, redirect_uri
            ),
        )
        if isinstance(result, Failure):
            raise errors.CodeExchangeFailed(
                "the provider refused to exchange the authorization code", details=result.details()
            )
        granted = result.granted
        if granted.refresh_token is None:
            raise errors.NoRefreshToken("the provider granted no refresh token")
        identity = await self.identity.identify(
            app, result.id_token, granted.access_token, str(record["nonce"])
        )
        stored = await self._identity_fields(request.account)
        check_identity(identity, request.expected_user, stored)
        scopes = granted.scopes if granted.scopes is not None else app.scopes
        missing = missing_scopes(app.provider, app.scopes, scopes)
        if missing:
            await self._scopes_missing(request, app, identity, missing)
            raise errors.ScopesMissing(
                "the provider did not grant every scope the app needs",
                details={"missingScopes": missing},
            )
        kept = request.expected_user or stored.get(EXPECTED_USER_FIELD)
        request = replace(request, expected_user=kept)  # _save keeps it on the account
        state = await self._save(request, app, identity, granted, scopes)
        log.info("consent_saved", account=request.account, app=app.id, state=state)
        return Connected(request.account, state, request.redirect_url)

    async def _save(
        self,
        request: ConsentRequest,
        app: App,
        identity: Identity,
        granted: Granted,
        scopes: list[str],
    ) -> str:
        now = self.clock.now_ms()
        lifetime_ms = granted.lifetime_s * 1000
        write = AccountWrite(
            app=app.id,
            provider=app.provider,
            user=identity.user,
            name=request.name or None,
            access_token=granted.access_token,
            refresh_token=granted.refresh_token,
            expires_at_ms=granted.expires_at_ms,
            lifetime_ms=lifetime_ms,
            scopes=scopes,
            missing_scopes=[],
            refreshed_at_ms=now,
            app_endpoints=app.endpoints_fingerprint,
            # the verified pin (tid/oid, or sub/iss) and the expectedUser, which every later
            # consent of this account must match (service/oauth/claims.py)
            identity={
                **identity_fields(identity, request.expected_user),
                **_mailbox_fields(request),
            },
            grant_deadline=at_grant(app.provider, app.fields, granted.refresh_expires_at_ms, now),
        )
        due = next_refresh_ms(self.config, now, granted.expires_at_ms, lifetime_ms)
        data = {"user": identity.user, "provider": app.provider}
        saved = await self.accounts.save(request.account, write, due, now, data)
        return saved.state

    async def _identity_fields(self, account_id: str) -> dict[str, str | None]:
        """The account's pinned identity and expectedUser (all None for a new account)."""
        names = [*PIN_FIELDS, EXPECTED_USER_FIELD]
        values = await self.redis.hmget(self.keys.account(account_id), names)
        return {name: None if v is None else str(v) for name, v in zip(names, values, strict=True)}

    async def _scopes_missing(
        self, request: ConsentRequest, app: App, identity: Identity, missing: list[str]
    ) -> None:
        data = {
            "user": identity.user,
            "provider": app.provider,
            "missingScopes": missing,
            "source": "consent",
        }
        now = self.clock.now_ms()
        wants = self.accounts.wants
        event = await wanted_event(wants, "scopesMissing", request.account, app.id, data, now)
        if event:  # one command: nothing else changes
            stream = self.keys.events(self.keys.partition_of(request.account))
            await self.redis.xadd(stream, {"payload": event})

    async def _authorization_url(self, app: App) -> str:
        url = await self.oauth.discovery.lookup(app, "authorization_url")
        if url is None:
            raise errors.InvalidInput(
                "the app has no authorizationUrl (set it, or an issuer to discover it from)"
            )
        return url


def _mailbox_fields(request: ConsentRequest) -> dict[str, str]:
    """The account's `email` and, for a shared mailbox, its `delegatedUser`."""
    fields = {F.EMAIL: request.email} if request.email else {}
    if request.delegated and request.email:
        fields[F.DELEGATED_USER] = request.email
    return fields


def _denied(query: Mapping[str, str]) -> errors.ApiError:
    error = query.get("error") or "access_denied"
    details = {"error": error[:200]}
    if query.get("error_description"):
        details["error_description"] = query["error_description"][:500]
    if error == "access_denied":
        return errors.ConsentDenied("access was not granted at the provider", details=details)
    return errors.ConsentDenied(f"the provider answered {error[:200]}", details=details)


def _check_issuer(app: App, iss: str | None) -> None:
    """RFC 9207: an `iss` in the answer must name the app's issuer (mix-up defence)."""
    expected = app.endpoints.issuer
    if iss is None or not expected or "{" in expected:
        return
    if iss.rstrip("/") != expected.rstrip("/"):
        raise errors.InvalidState("the answer came from another issuer than the app's")
