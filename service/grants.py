"""Which grant obtains an account's access token, and the two application grants.

- refresh_token: every app type that takes a user's consent (service/refresh.py runs it).
- jwt_bearer (RFC 7523): gmailService. An assertion signed with the service account's key,
  `sub` = the account's mailbox, minted on demand; no refresh token exists anywhere.
- client_credentials (RFC 6749 §4.4): outlookService. One app-only token per app, shared by
  all its accounts (service/app_tokens.py).

Failures keep the refresh classes: an assertion the provider refuses (bad signature, revoked
key, wrong audience, clock), missing delegation for the scopes and refused client
credentials are the app's problem; a subject refused (suspended, not in the domain) is that
account's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable
from typing import Literal

from service import errors
from service.accounts import Account
from service.app_tokens import AppTokens
from service.apps import App, AppStore
from service.clock import Clock
from service.credential_retry import with_credentials
from service.oauth.client import Failure, OAuthClient, RefreshResult
from service.providers import app_only_scopes
from service.service_key import JWT_BEARER, ServiceKey, assertion, parse_service_key

GrantType = Literal["refresh_token", "jwt_bearer", "client_credentials"]
GRANT_OF: dict[str, GrantType] = {
    "gmailService": "jwt_bearer",
    "outlookService": "client_credentials",
}
NO_KEY = Failure("app", "no_service_key", "the app has no usable service key", reason="serviceKey")


def grant_type(provider: str) -> GrantType:
    """The grant that obtains access tokens for accounts of this provider type."""
    return GRANT_OF.get(provider, "refresh_token")


def jwt_failure(failure: Failure) -> Failure:
    """Reclassify a refused JWT bearer grant (pure).

    Google answers a bad assertion with invalid_grant "Invalid JWT…": the app's key or
    clock is at fault, not the account's grant.
    """
    refused_assertion = failure.error == "invalid_grant" and (
        (failure.description or "").startswith("Invalid JWT")
    )
    if refused_assertion or (failure.kind == "permanent" and failure.error == "invalid_scope"):
        return dataclasses.replace(failure, kind="app", reason="serviceKey")
    if failure.kind == "permanent" and failure.error == "invalid_grant":
        return dataclasses.replace(failure, reason="delegationRefused")
    return failure


class Grants:
    """Runs the application grants for accounts of service-account apps."""

    def __init__(
        self, apps: AppStore, oauth: OAuthClient, app_tokens: AppTokens, clock: Clock
    ) -> None:
        self.apps, self.oauth, self.app_tokens, self.clock = apps, oauth, app_tokens, clock
        self._keys: dict[str, tuple[str, ServiceKey]] = {}  # app id -> (sealed, its key)

    async def service_token(self, app: App, account: Account, min_valid_ms: int) -> RefreshResult:
        """An access token for the account through its app's grant; never raises.

        A refusal of the app's credentials is remembered for a short while, so that the
        app's other accounts learn it without asking the provider once each.
        """
        refused = await self.app_tokens.refused(app)
        if refused is not None:
            return refused
        if grant_type(app.provider) == "jwt_bearer":
            result = await self.jwt_bearer(app, account.user)
        else:
            result = await self.client_credentials(app, min_valid_ms)
        if isinstance(result, Failure) and result.kind == "app":
            await self.app_tokens.remember_refusal(app, result)
        return result

    async def jwt_bearer(self, app: App, subject: str) -> RefreshResult:
        """Mint a token for `subject` with an assertion signed by the app's key."""
        key = self._service_key(app)
        if key is None:
            return NO_KEY
        issuer = app.fields.get("serviceClientEmail") or key.client_email
        audience = app.endpoints.token_url
        if not issuer or not audience:
            return NO_KEY
        signed = assertion(
            key,
            issuer=issuer,
            subject=subject,
            scopes=app.scopes,
            audience=audience,
            now_s=self.clock.now_ms() // 1000,
        )
        result = await self.oauth.grant(app, {"grant_type": JWT_BEARER, "assertion": signed})
        return jwt_failure(result) if isinstance(result, Failure) else result

    def _service_key(self, app: App) -> ServiceKey | None:
        """The app's key, loaded once per process and again only when the app's key changes."""
        sealed = app.encrypted_service_key
        if sealed is None:
            return None
        known = self._keys.get(app.id)
        if known is not None and known[0] == sealed:
            return known[1]
        try:
            key = parse_service_key(self.apps.service_key(app) or "")
        except errors.InvalidInput:
            return None
        self._keys[app.id] = (sealed, key)
        return key

    async def client_credentials(self, app: App, min_valid_ms: int) -> RefreshResult:
        """The app's own token, cached for all its accounts (fetched once when stale)."""
        form = {
            "grant_type": "client_credentials",
            "scope": " ".join(app_only_scopes(app.cloud, app.fields.get("baseScopes"))),
        }

        def fetch() -> Awaitable[RefreshResult]:
            """The grant with the app's secret or certificate (the next one if refused)."""
            return with_credentials(
                self.apps, app, lambda credential: self.oauth.client_grant(app, credential, form)
            )

        result = await self.app_tokens.token(app, fetch, min_valid_ms)
        if isinstance(result, Failure):
            return result
        return dataclasses.replace(result, scopes=None)  # the account keeps what it names
