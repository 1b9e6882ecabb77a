"""The parts one process needs (stores, cache, refresher), wired together, and the token view."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog
from redis.asyncio import Redis

from service import errors
from service.accounts import Account, AccountStore, account_from_hash
from service.apitokens import ApiToken, ApiTokenStore, check_access, token_from_hash
from service.apps import AppStore
from service.clock import Clock, iso
from service.config import Config
from service.consent import ConsentFlow
from service.crypto.cipher import Cipher, sha256_hex
from service.links import HostedLinks
from service.oauth.client import OAuthClient, Revocation
from service.oauth.identity import IdentityVerifier
from service.oauth.jose import Signer
from service.refresh import Refreshed, Refresher
from service.refresh_errors import needs_reauth, reauth_required, refresh_error
from service.settings import DEFAULTS, OAUTH_TOKENS_API, SettingsStore
from service.store.cache import MISS, LocalCache
from service.store.connection import read_hash
from service.store.keys import CacheNames, Keys
from service.store.scripts import Scripts

log = structlog.get_logger("core")


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
    status: str
    expires: str | None  # expires_at_ms in ISO 8601, formatted once per view

    def body(self, cached: bool) -> dict[str, Any]:
        """The token endpoint's JSON body."""
        return {
            "account": self.account,
            "user": self.user,
            "accessToken": self.access_token,
            "provider": self.provider,
            "app": self.app,
            "registeredScopes": self.scopes,
            "expires": self.expires,
            "cached": cached,
        }


class Core:
    """Everything a web process or worker uses, built from one Config and one Redis."""

    def __init__(
        self, config: Config, redis: Redis, http: aiohttp.ClientSession, clock: Clock
    ) -> None:
        self.config, self.redis, self.clock = config, redis, clock
        self.keys = Keys(config.redis_prefix, config.schedule_partitions)
        self.cipher = Cipher(config.secret_key, config.old_secret_keys)
        self.scripts = Scripts(redis)
        self.cache = LocalCache(config.cache_ttl_s)
        self.token_uses: dict[str, int] = {}  # API token digest -> last use (epoch ms)
        notify = self.cache.invalidate
        self.tokens = ApiTokenStore(redis, self.keys, notify)
        self.settings = SettingsStore(redis, self.keys, notify)
        wants = self.wants_event
        self.apps = AppStore(
            redis, self.keys, self.scripts, self.cipher, config, notify, wants, self.cache
        )
        self.accounts = AccountStore(redis, self.keys, self.scripts, self.cipher, notify, wants)
        self.oauth = OAuthClient(http, clock, config.provider_timeout_s)
        self.refresher = Refresher(
            redis, self.keys, self.accounts, self.apps, self.oauth, clock, config
        )
        self.signer = Signer(config.secret_key, config.old_secret_keys)
        self.identity = IdentityVerifier(http, self.oauth.discovery, clock, self.oauth.timeout)
        self.consent = ConsentFlow(
            redis,
            self.keys,
            (self.apps, self.accounts),
            self.oauth,
            self.identity,
            (self.signer, self.cipher),
            clock,
            config,
        )
        self.links = HostedLinks(redis, self.keys, self.signer, clock, config.base_url)

    async def delete_account(self, account: Account) -> tuple[bool, Revocation | None]:
        """Delete the account, then revoke its refresh token at the provider (best effort).

        The revocation is tried once with a short timeout; its failure never undoes the delete.
        """
        refresh_token = self.accounts.refresh_token(account) if account.encrypted_refresh else None
        deleted = await self.accounts.delete(account, self.clock.now_ms())
        if not deleted or refresh_token is None:
            return deleted, None
        app = await self.apps.get(account.app)
        if app is None:
            return deleted, Revocation(False, "appDeleted", "the account's app no longer exists")
        outcome = await self.oauth.revoke(app, self.apps.client_secret(app), refresh_token)
        log.info(
            "account_revoked" if outcome.revoked else "account_revoke_failed",
            account=account.id,
            reason=outcome.reason,
        )
        return deleted, outcome

    async def seed_settings(self) -> None:
        """Apply first-start seeds from the environment (never overriding the operator)."""
        if self.config.enable_oauth_tokens_api_seed is not None:
            await self.settings.seed(OAUTH_TOKENS_API, self.config.enable_oauth_tokens_api_seed)

    async def authorize(self, bearer: str | None, scope: str, account: str | None) -> ApiToken:
        """Check a presented API token for `scope` (and `account`); cached per process."""
        if not bearer:
            raise errors.Unauthorized("a valid API token is required")
        digest = sha256_hex(bearer)
        token = self.cache.get(CacheNames.api_token(digest))
        if token is MISS:
            epoch = self.cache.epoch
            raw = await read_hash(self.redis, self.keys.api_token(digest))
            token = token_from_hash(digest, raw)
            self.cache.put(CacheNames.api_token(digest), token, epoch)
        now = self.clock.now_ms()
        allowed = check_access(token, scope, account, now)
        self.token_uses[digest] = now  # written to Redis in batches by flush_token_uses()
        return allowed

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

    async def setting(self, name: str) -> Any:
        """Return one setting, cached per process."""
        values = self.cache.get(CacheNames.SETTINGS)
        if values is MISS:
            epoch = self.cache.epoch
            values = await self.settings.all()
            self.cache.put(CacheNames.SETTINGS, values, epoch)
        return values.get(name, DEFAULTS.get(name))

    async def wants_event(self, name: str) -> bool:
        """Whether webhooks want this event queued: on, with a URL, and not filtered out."""
        if not await self.setting("webhooksEnabled") or not await self.setting("webhooks"):
            return False
        events = await self.setting("webhookEvents")
        return events == "*" or name in events

    async def token_view(self, account_id: str) -> TokenView:
        """Return the account's token view (cached, invalidated on every change)."""
        view = self.cache.get(CacheNames.account(account_id))
        if view is MISS:
            epoch = self.cache.epoch
            raw = await read_hash(self.redis, self.keys.account(account_id))
            account = account_from_hash(raw)
            if account is None:
                raise errors.AccountNotFound(f"no account with id {account_id!r}")
            view = self.view_of(account)
            self.cache.put(CacheNames.account(account_id), view, epoch)
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

    async def fresh_token(self, account_id: str, min_valid_ms: int) -> tuple[TokenView, bool, bool]:
        """Return (view, cached, refresh_failed) for the token endpoint, refreshing if needed."""
        view = await self.token_view(account_id)
        if view.status != "active":
            raise reauth_required(await self.accounts.require(account_id))
        now = self.clock.now_ms()
        if view.expires_at_ms is not None and view.expires_at_ms - now >= min_valid_ms:
            return view, True, False
        outcome = await self.refresher.refresh(account_id, min_valid_ms, app=view.app)
        if isinstance(outcome, Refreshed):
            view = self.view_of(outcome.account, outcome.access_token)
            return view, not outcome.called, False
        if not needs_reauth(outcome) and outcome.account.valid_for_ms(self.clock.now_ms()) > 0:
            return self.view_of(outcome.account), False, True
        raise refresh_error(outcome)
