"""The operator's settings stored in Redis (not the environment Config)."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from service import errors
from service.crypto.sealed import Record
from service.limits import SERVICE_SECRET_MAX
from service.outbound.urls import check_outbound_url
from service.store.cache import MISS, Invalidate, LocalCache, forget_nothing
from service.store.connection import as_mapping
from service.store.keys import CacheNames, Keys
from service.webhooks.emailengine import FORMATS, new_service_secret
from service.webhooks.events import EVENTS
from service.webhooks.headers import AAD as HEADERS_AAD
from service.webhooks.headers import FIELD as HEADERS
from service.webhooks.headers import SEALED as HEADER_VALUES
from service.webhooks.headers import WebhookHeaders, check_headers, masked
from service.webhooks.secrets import AAD as SECRET_AAD
from service.webhooks.secrets import CURRENT as SECRET
from service.webhooks.secrets import PREVIOUS as PREVIOUS_SECRET
from service.webhooks.service_secret import AAD as SERVICE_SECRET_AAD
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret

DEFAULTS: dict[str, Any] = {
    "enableOAuthTokensApi": False,
    "allowedRedirectUrls": [],
    "webhooks": None,
    "webhooksEnabled": False,
    "webhookEvents": "*",
    "webhookHeaders": {},
    "webhookFormat": "standard",
    SERVICE_SECRET: False,  # write-only: shown as whether one is set
}
OAUTH_TOKENS_API = "enableOAuthTokensApi"

SEALED_FIELDS = (SECRET, PREVIOUS_SECRET, HEADER_VALUES, SERVICE_SECRET)  # encrypted at rest
SEALED_AADS = (SECRET_AAD, SECRET_AAD, HEADERS_AAD, SERVICE_SECRET_AAD)


def sealed_record(key: str) -> Record:
    """The settings hash as a sealed record: webhook secrets, header values, serviceSecret."""
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
    elif name in ("webhookFormat", SERVICE_SECRET):
        _check_format_value(name, value)
    return value


def _check_format_value(name: str, value: Any) -> None:
    """Check that webhookFormat is a known format and serviceSecret a sane string.

    serviceSecret may also be a boolean, what GET shows: given back, it keeps the stored one.
    """
    if name == "webhookFormat" and value not in FORMATS:
        raise errors.InvalidInput(
            f"{name} must be one of {', '.join(FORMATS)}", details={"field": name}
        )
    if (
        name == SERVICE_SECRET
        and not isinstance(value, bool)
        and (not isinstance(value, str) or not 0 < len(value) <= SERVICE_SECRET_MAX)
    ):
        raise errors.InvalidInput(
            f"{name} must be a string of 1 to {SERVICE_SECRET_MAX} characters",
            details={"field": name},
        )


def _needs_secret(values: dict[str, Any]) -> str | None:
    """A new serviceSecret, to store if none is set, when emailengine is chosen without one."""
    if values.get("webhookFormat") == "emailengine" and SERVICE_SECRET not in values:
        return new_service_secret()
    return None


class SettingsStore:
    """Reads and writes settings; each write tells every web process to forget its copy."""

    def __init__(self, redis: Redis, keys: Keys, notify: Invalidate = forget_nothing) -> None:
        self.redis, self.keys, self.notify = redis, keys, notify

    async def all(self) -> dict[str, Any]:
        """Return every setting, defaults filled in."""
        raw = await self.redis.hgetall(self.keys.settings)
        stored = {
            k: orjson.loads(v) for k, v in raw.items() if k in DEFAULTS and k != SERVICE_SECRET
        }
        found = {**DEFAULTS, **stored}
        found[HEADERS] = masked(found[HEADERS])  # write-only (and stored in clear by old versions)
        found[SERVICE_SECRET] = SERVICE_SECRET in raw  # write-only: sealed, never shown
        return found

    async def update(
        self,
        values: dict[str, Any],
        headers: WebhookHeaders | None = None,
        secret: ServiceSecret | None = None,
    ) -> dict[str, Any]:
        """Store already-checked values in one MULTI/EXEC and return all settings.

        Custom webhook headers need `headers`, which seals their values; serviceSecret, and
        switching webhookFormat to emailengine while none is set (one is generated then),
        need `secret`. The answer holds serviceSecret in clear only when it was set or
        generated by this call (shown this once).
        """
        shown: str | None = None
        if isinstance(values.get(SERVICE_SECRET), bool):  # as GET shows it: keep the stored one
            values = {k: v for k, v in values.items() if k != SERVICE_SECRET}
        if values:
            plain = {k: v for k, v in values.items() if k not in (HEADERS, SERVICE_SECRET)}
            mapping = {k: orjson.dumps(v).decode() for k, v in plain.items()}
            if HEADERS in values:
                if headers is None:
                    raise ValueError("webhook headers are stored through WebhookHeaders")
                mapping.update(await headers.fields(values[HEADERS]))
            fresh = _needs_secret(values)
            if (SERVICE_SECRET in values or fresh) and secret is None:
                raise ValueError("serviceSecret is stored through ServiceSecret")
            if SERVICE_SECRET in values and secret is not None:
                shown = values[SERVICE_SECRET]
                mapping[SERVICE_SECRET] = secret.seal(values[SERVICE_SECRET])
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self.keys.settings, mapping=as_mapping(mapping))
                if fresh and secret is not None:  # only when none is set (HSETNX)
                    pipe.hsetnx(self.keys.settings, SERVICE_SECRET, secret.seal(fresh))
                pipe.publish(self.keys.invalidations, CacheNames.SETTINGS)
                done = await pipe.execute()
            self.notify(CacheNames.SETTINGS)
            if fresh and done[1]:
                shown = fresh
        found = await self.all()
        if shown is not None:
            found[SERVICE_SECRET] = shown
        return found

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
