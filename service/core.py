"""The parts one process uses (stores, cache, refresher, services), wired by build_core."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from redis.asyncio import Redis

from service.account_removal import AccountRemoval
from service.accounts import AccountStore
from service.apitokens import ApiTokenStore
from service.apps import AppStore
from service.audit import AuditTrail
from service.audit_query import AuditReader
from service.clock import Clock
from service.config import Config
from service.consent import ConsentFlow
from service.crypto.cipher import Cipher
from service.links import HostedLinks
from service.oauth.client import OAuthClient
from service.oauth.identity import IdentityVerifier
from service.oauth.jose import Signer
from service.refresh import Refresher
from service.settings import OAUTH_TOKENS_API, CachedSettings, SettingsStore
from service.store.cache import LocalCache
from service.store.keys import Keys
from service.store.scripts import Scripts
from service.tokens import TokenService
from service.tracing import Tracing


@dataclass
class Core:
    """Everything a web process or worker uses, built from one Config and one Redis.

    Only wiring: the behaviour lives in the parts. `cached_settings` is the operator's
    settings through this process's cache; `token_service` the token endpoint's use case.
    """

    config: Config
    redis: Redis
    clock: Clock
    keys: Keys
    cipher: Cipher
    scripts: Scripts
    cache: LocalCache
    settings: SettingsStore
    cached_settings: CachedSettings
    tokens: ApiTokenStore
    apps: AppStore
    accounts: AccountStore
    oauth: OAuthClient
    refresher: Refresher
    removal: AccountRemoval
    token_service: TokenService
    signer: Signer
    identity: IdentityVerifier
    consent: ConsentFlow
    links: HostedLinks
    tracing: Tracing
    audit: AuditTrail
    audit_reader: AuditReader


def build_core(config: Config, redis: Redis, http: aiohttp.ClientSession, clock: Clock) -> Core:
    """Wire the parts: each store gets the cache's invalidate and the webhook event filter."""
    keys = Keys(config.redis_prefix, config.schedule_partitions)
    cipher = Cipher(config.secret_key, config.old_secret_keys)
    scripts = Scripts(redis)
    cache = LocalCache(config.cache_ttl_s)
    forget = cache.invalidate  # this process at once; the others through the channel
    settings = SettingsStore(redis, keys, forget)
    cached_settings = CachedSettings(settings, cache)
    wants = cached_settings.wants_event
    apps = AppStore(redis, keys, scripts, cipher, config, forget, wants, cache)
    accounts = AccountStore(redis, keys, scripts, cipher, forget, wants)
    oauth = OAuthClient(http, clock, config.provider_timeout_s)
    tracing = Tracing.from_config(config)
    refresher = Refresher(redis, keys, accounts, apps, oauth, clock, config, tracing)
    signer = Signer(config.secret_key, config.old_secret_keys)
    identity = IdentityVerifier(http, oauth.discovery, clock, oauth.timeout)
    consent = ConsentFlow(
        redis, keys, (apps, accounts), oauth, identity, (signer, cipher), clock, config
    )
    return Core(
        config=config,
        redis=redis,
        clock=clock,
        keys=keys,
        cipher=cipher,
        scripts=scripts,
        cache=cache,
        settings=settings,
        cached_settings=cached_settings,
        tokens=ApiTokenStore(redis, keys, forget),
        apps=apps,
        accounts=accounts,
        oauth=oauth,
        refresher=refresher,
        removal=AccountRemoval(accounts, apps, oauth, clock),
        token_service=TokenService(
            redis, keys, scripts, cache, accounts, refresher, clock, tracing
        ),
        signer=signer,
        identity=identity,
        consent=consent,
        links=HostedLinks(redis, keys, signer, clock, config.base_url),
        tracing=tracing,
        audit=AuditTrail(redis, keys, scripts, clock, config),
        audit_reader=AuditReader(redis, keys, config.audit_partitions),
    )


async def seed_settings(core: Core) -> None:
    """Apply first-start seeds from the environment (never overriding the operator)."""
    if core.config.enable_oauth_tokens_api_seed is not None:
        await core.settings.seed(OAUTH_TOKENS_API, core.config.enable_oauth_tokens_api_seed)
