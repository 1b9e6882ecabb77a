"""The token use case: check the caller's API token, serve an account's fresh access token."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from service import errors
from service.accounts import Account, AccountStore, Status
from service.apitokens import ApiToken, check_access, raw_digest, token_from_hash
from service.clock import Clock, iso
from service.crypto.cipher import sha256_hex
from service.refresh import Refreshed, Refresher, outcome_name
from service.refresh_errors import needs_reauth, reauth_required, refresh_error
from service.resource_refresh import ResourceRefresher, Served
from service.resource_tokens import ResourceToken, ResourceTokens
from service.resources import Resource
from service.store.cache import MISS, LocalCache
from service.store.connection import read_hash
from service.store.keys import CacheNames, Keys
from service.store.scripts import Scripts
from service.tracing import Tracing


@dataclass(frozen=True)
class TokenView:
    """What the token endpoint serves of an account, decrypted once and cached."""

    account: str
    user: str
    access_token: str | None
    provider: str
    app: str
    scopes: list[str]
    expires_at_ms: int | None
    status: Status
    expires: str | None  # expires_at_ms in ISO 8601, formatted once per view
    resource: str | None = None  # a per-resource token's resource (service/resources.py)

    def body(self, cached: bool) -> dict[str, Any]:
        """The token endpoint's JSON body (`resource` only for a per-resource token)."""
        body = {
            "account": self.account,
            "user": self.user,
            "accessToken": self.access_token,
            "provider": self.provider,
            "app": self.app,
            "registeredScopes": self.scopes,
            "expires": self.expires,
            "cached": cached,
        }
        if self.resource is not None:
            body["resource"] = self.resource
        return body

    @functools.cached_property
    def cached_json(self) -> bytes:
        """The JSON body of an answer served from this view as it is (`cached: true`).

        Serialised once per view: a view is immutable and replaced on every change.
        """
        return orjson.dumps(self.body(True))

    @functools.cached_property
    def served(self) -> FreshToken:
        """The view served as it is (`cached: true`): one object per view."""
        return FreshToken(self, cached=True)


@dataclass(frozen=True)
class FreshToken:
    """What fresh_token serves: the view, and how it was obtained.

    `cached`: no provider call was made for it; `refresh_failed`: a refresh failed but the
    stored token still works for a while.
    """

    view: TokenView
    cached: bool
    refresh_failed: bool = False

    def body(self) -> dict[str, Any]:
        """The token endpoint's JSON body (refreshFailed only when it did)."""
        body = self.view.body(self.cached)
        if self.refresh_failed:
            body["refreshFailed"] = True
        return body

    def json(self) -> bytes:
        """body() as JSON; a cache hit's is the view's, serialised once."""
        if self.cached and not self.refresh_failed:
            return self.view.cached_json
        return orjson.dumps(self.body())


class TokenService:
    """Authorizes API tokens and serves access tokens, both through the process cache."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cache: LocalCache,
        accounts: AccountStore,
        refresher: Refresher,
        clock: Clock,
        tracing: Tracing | None = None,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cache = redis, keys, scripts, cache
        self.accounts, self.refresher, self.clock = accounts, refresher, clock
        self.tracing = tracing or Tracing()
        self.token_uses: dict[str, int] = {}  # API token digest -> last use (epoch ms)
        store = ResourceTokens(redis, keys, scripts, accounts.cipher)
        self.resources = ResourceRefresher(refresher, store)

    async def authorize(self, bearer: str | None, scope: str, account: str | None) -> ApiToken:
        """Check a presented API token for `scope` (and `account`); cached per process."""
        if not bearer:
            raise errors.Unauthorized("Missing authentication")
        token = await self._api_token(sha256_hex(bearer))
        alt = raw_digest(bearer) if token is None else None  # EmailEngine's form, on a miss only
        if alt is not None:
            token = await self._api_token(alt)
            token = token if token is not None and token.raw_bytes else None
        now = self.clock.now_ms()
        allowed = check_access(token, scope, account, now)
        self.token_uses[allowed.digest] = now  # written to Redis in batches by flush_token_uses()
        return allowed

    async def _api_token(self, digest: str) -> ApiToken | None:
        """The token stored under `digest`, through this process's cache."""
        name = CacheNames.api_token(digest)
        token = self.cache.get(name)
        if token is MISS:
            epoch = self.cache.epoch
            raw = await read_hash(self.redis, self.keys.api_token(digest))
            token = token_from_hash(digest, raw)
            self.cache.put(name, token, epoch)
        return cast(ApiToken | None, token)

    async def flush_token_uses(self) -> None:
        """Write the API tokens' last-use times gathered since the last flush."""
        uses, self.token_uses = self.token_uses, {}
        if not uses:
            return
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest, at_ms in uses.items():
                await self.scripts.queue(
                    pipe, "apitoken_touch", [self.keys.api_token(digest)], [at_ms]
                )
            await pipe.execute()

    async def token_view(self, account_id: str) -> TokenView:
        """Return the account's token view (cached, invalidated on every change)."""
        name = CacheNames.account(account_id)
        view = self.cache.get(name)
        if view is MISS:
            epoch = self.cache.epoch
            account = await self.accounts.get(account_id)
            if account is None:
                raise errors.AccountNotFound(f"no account with id {account_id!r}")
            view = self.view_of(account)
            self.cache.put(name, view, epoch)
        return view  # type: ignore[no-any-return]

    def view_of(self, account: Account, access_token: str | None = None) -> TokenView:
        """The account's token view: `access_token` when in hand, else decrypted."""
        valid = account.encrypted_access is not None and account.expires_at_ms is not None
        if valid and access_token is None:
            access_token = self.accounts.access_token(account)
        return TokenView(
            account=account.id,
            user=account.user,
            access_token=access_token if valid else None,
            provider=account.provider,
            app=account.app,
            scopes=account.scopes,
            expires_at_ms=account.expires_at_ms if valid else None,
            status=account.status,
            expires=iso(account.expires_at_ms) if valid and account.expires_at_ms else None,
        )

    async def fresh_token(self, account_id: str, min_valid_ms: int) -> FreshToken:
        """The account's token valid for `min_valid_ms`, refreshing it first when needed.

        A failed refresh still serves a stored token that works (refresh_failed); otherwise
        it raises the failure's error (service/refresh_errors.py).
        """
        if self.tracing.enabled:
            with self.tracing.span("cache") as span:
                view = await self.token_view(account_id)
                span.set_attribute("account.id", account_id)
        else:  # the hot path, without even a no-op span
            view = await self.token_view(account_id)
        if view.status != Status.ACTIVE:
            raise reauth_required(await self.accounts.require(account_id))
        now = self.clock.now_ms()
        if view.expires_at_ms is not None and view.expires_at_ms - now >= min_valid_ms:
            return view.served
        with self.tracing.span("refresh") as span:
            span.set_attribute("account.id", account_id)
            span.set_attribute("app.id", view.app)
            outcome = await self.refresher.refresh(account_id, min_valid_ms, app=view.app)
            span.set_attribute("refresh.outcome", outcome_name(outcome))
        if isinstance(outcome, Refreshed):
            fresh = self.view_of(outcome.account, outcome.access_token)
            return FreshToken(fresh, cached=not outcome.called)
        if not needs_reauth(outcome) and outcome.account.valid_for_ms(self.clock.now_ms()) > 0:
            return FreshToken(self.view_of(outcome.account), cached=False, refresh_failed=True)
        raise refresh_error(outcome)

    async def fresh_resource_token(
        self, account: Account, resource: Resource, min_valid_ms: int
    ) -> FreshToken:
        """The account's token for `resource`, valid for `min_valid_ms` (as fresh_token).

        `account` as the caller just read it from Redis (not the process cache: its status and
        grant generation decide), then the resource's entry.
        """
        account_id = account.id
        if account.status != Status.ACTIVE:
            raise reauth_required(account)
        held = await self.resources.store.get(account, resource.slot)
        if held is not None and held.expires_at_ms - self.clock.now_ms() >= min_valid_ms:
            return FreshToken(self._resource_view(account, held, resource), cached=True)
        with self.tracing.span("refresh") as span:
            span.set_attribute("account.id", account_id)
            outcome = await self.resources.fresh(account_id, resource, min_valid_ms)
        if isinstance(outcome, Served):
            view = self._resource_view(outcome.account, outcome.token, resource)
            return FreshToken(view, cached=not outcome.called)
        if (
            held is not None
            and not needs_reauth(outcome)
            and held.expires_at_ms > self.clock.now_ms()
        ):
            view = self._resource_view(account, held, resource)
            return FreshToken(view, cached=False, refresh_failed=True)
        error = refresh_error(outcome)
        error.details = {**(error.details or {}), "resource": resource.name}
        raise error

    def _resource_view(
        self, account: Account, token: ResourceToken, resource: Resource
    ) -> TokenView:
        return TokenView(
            account=account.id,
            user=account.user,
            access_token=token.access_token,
            provider=account.provider,
            app=account.app,
            scopes=token.scopes,
            expires_at_ms=token.expires_at_ms,
            status=account.status,
            expires=iso(token.expires_at_ms),
            resource=resource.name,
        )
