"""The operator's settings stored in Redis (not the environment Config)."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from service import errors
from service.crypto.sealed import Record
from service.outbound.urls import check_outbound_url
from service.store.cache import MISS, Invalidate, LocalCache, forget_nothing
from service.store.connection import as_mapping
from service.store.keys import CacheNames, Keys
from service.webhooks.events import EVENTS
from service.webhooks.headers import AAD as HEADERS_AAD
from service.webhooks.headers import FIELD as HEADERS
from service.webhooks.headers import SEALED as HEADER_VALUES
from service.webhooks.headers import WebhookHeaders, check_headers, masked
from service.webhooks.secrets import AAD as SECRET_AAD
from service.webhooks.secrets import CURRENT as SECRET
from service.webhooks.secrets import PREVIOUS as PREVIOUS_SECRET

DEFAULTS: dict[str, Any] = {
    "enableOAuthTokensApi": False,
    "allowedRedirectUrls": [],
    "webhooks": None,
    "webhooksEnabled": False,
    "webhookEvents": "*",
    "webhookHeaders": {},
}
OAUTH_TOKENS_API = "enableOAuthTokensApi"

SEALED_FIELDS = (SECRET, PREVIOUS_SECRET, HEADER_VALUES)  # encrypted at rest
SEALED_AADS = (SECRET_AAD, SECRET_AAD, HEADERS_AAD)


def sealed_record(key: str) -> Record:
    """The settings hash as a sealed record: webhook secrets and header values."""
    return Record(key, "settings", SEALED_FIELDS, SEALED_AADS)


def check_value(name: str, value: Any, *, allow_private: bool) -> Any:
    """Return a valid value for setting `name`; raise InvalidInput (or InvalidWebhookHeader)."""
    if name not in DEFAULTS:
        raise errors.InvalidInput(f"unknown setting {name!r}", details={"field": name})
    if name in ("enableOAuthTokensApi", "webhooksEnabled"):
        if not isinstance(value, bool):
            raise errors.InvalidInput(f"{name} must be true or false", details={"field": name})
    elif name == "allowedRedirectUrls":
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise errors.InvalidInput(f"{name} must be a list of URLs", details={"field": name})
        for url in value:
            check_outbound_url(url, name, allow_private=True)
    elif name == "webhooks":
        if value is not None:
            if not isinstance(value, str):
                raise errors.InvalidInput(f"{name} must be a URL", details={"field": name})
            check_outbound_url(value, name, allow_private=allow_private)
    elif name == "webhookEvents":
        if value != "*" and (not isinstance(value, list) or not all(v in EVENTS for v in value)):
            raise errors.InvalidInput(
                f"{name} must be '*' or a list of {', '.join(EVENTS)}", details={"field": name}
            )
    elif name == "webhookHeaders":
        check_headers(value)
    return value


class SettingsStore:
    """Reads and writes settings; each write tells every web process to forget its copy."""

    def __init__(self, redis: Redis, keys: Keys, notify: Invalidate = forget_nothing) -> None:
        self.redis, self.keys, self.notify = redis, keys, notify

    async def all(self) -> dict[str, Any]:
        """Return every setting, defaults filled in."""
        raw = await self.redis.hgetall(self.keys.settings)
        stored = {k: orjson.loads(v) for k, v in raw.items() if k in DEFAULTS}
        found = {**DEFAULTS, **stored}
        found[HEADERS] = masked(found[HEADERS])  # write-only (and stored in clear by old versions)
        return found

    async def update(
        self, values: dict[str, Any], headers: WebhookHeaders | None = None
    ) -> dict[str, Any]:
        """Store already-checked values in one MULTI/EXEC and return all settings.

        Custom webhook headers need `headers`, which seals their values.
        """
        if values:
            mapping = {k: orjson.dumps(v).decode() for k, v in values.items() if k != HEADERS}
            if HEADERS in values:
                if headers is None:
                    raise ValueError("webhook headers are stored through WebhookHeaders")
                mapping.update(await headers.fields(values[HEADERS]))
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.settings, mapping=as_mapping(mapping))
                pipe.publish(self.keys.invalidations, CacheNames.SETTINGS)
                await pipe.execute()
            self.notify(CacheNames.SETTINGS)
        return await self.all()

    async def seed(self, name: str, value: Any) -> bool:
        """Set a setting only if it was never set (first start); True when it was set now."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hsetnx(self.keys.settings, name, orjson.dumps(value).decode())
            pipe.publish(self.keys.invalidations, CacheNames.SETTINGS)
            created, _ = await pipe.execute()
        self.notify(CacheNames.SETTINGS)
        return bool(created)


class CachedSettings:
    """The settings as this process sees them: one cache entry, read through on a miss."""

    def __init__(self, store: SettingsStore, cache: LocalCache) -> None:
        self.store, self.cache = store, cache

    async def get(self, name: str) -> Any:
        """Return one setting (its default when unset)."""
        values = self.cache.get(CacheNames.SETTINGS)
        if values is MISS:
            epoch = self.cache.epoch
            values = await self.store.all()
            self.cache.put(CacheNames.SETTINGS, values, epoch)
        return values.get(name, DEFAULTS.get(name))

    async def wants_event(self, name: str) -> bool:
        """Whether webhooks want this event queued: on, with a URL, and not filtered out.

        The stores take this as their event filter (service.webhooks.events.Wanted).
        """
        if not await self.get("webhooksEnabled") or not await self.get("webhooks"):
            return False
        events = await self.get("webhookEvents")
        return events == "*" or name in events
