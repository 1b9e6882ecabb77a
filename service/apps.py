"""OAuth2 apps: validation of their input and their storage in Redis."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from service import errors, limits, validate
from service.account_record import endpoints_fingerprint
from service.config import Config
from service.crypto.cipher import Cipher
from service.crypto.sealed import Record, bound_record
from service.outbound.urls import check_outbound_url
from service.providers import (
    ENDPOINT_FIELDS,
    KINDS,
    MICROSOFT_CLOUDS,
    MICROSOFT_TENANTS,
    Endpoints,
    builtin_endpoints,
    default_scopes,
)
from service.store.cache import MISS, Invalidate, LocalCache, forget_nothing
from service.store.connection import read_hash
from service.store.keys import CacheNames, Keys
from service.store.scripts import Scripts
from service.webhooks.events import Wanted, always, wanted_event

SCHEMA_VERSION = "1"
SEALED_FIELDS = ("clientSecret",)  # encrypted at rest, bound to app:<id>:<field>
FROZEN_FIELDS = ("issuer", "tenant", "cloud", *ENDPOINT_FIELDS)
TEXT_FIELDS = ("name", "clientId", "redirectUrl", "tenant", "cloud", "issuer", *ENDPOINT_FIELDS)
INPUT_FIELDS = {"id", "provider", "clientSecret", "additionalScopes", *TEXT_FIELDS}


@dataclass(frozen=True)
class App:
    """One OAuth2 app as stored (the client secret stays encrypted)."""

    id: str
    provider: str
    client_id: str
    fields: dict[str, str] = field(default_factory=dict)
    additional_scopes: list[str] = field(default_factory=list)
    encrypted_secret: str | None = field(default=None, repr=False)

    @property
    def endpoints(self) -> Endpoints:
        """Built-in endpoints of the kind, overridden by the app's own."""
        base = builtin_endpoints(
            self.provider, self.fields.get("tenant", "common"), self.fields.get("cloud", "global")
        )
        return Endpoints(
            authorization_url=self.fields.get("authorizationUrl", base.authorization_url),
            token_url=self.fields.get("tokenUrl", base.token_url),
            userinfo_url=self.fields.get("userinfoUrl", base.userinfo_url),
            jwks_url=self.fields.get("jwksUrl", base.jwks_url),
            revocation_url=self.fields.get("revocationUrl", base.revocation_url),
            issuer=self.fields.get("issuer", base.issuer),
        )

    @property
    def endpoints_fingerprint(self) -> str:
        """Digest of the endpoint URLs, recorded on each account: tokens go nowhere else."""
        return endpoints_fingerprint(dataclasses.astuple(self.endpoints))

    @property
    def scopes(self) -> list[str]:
        """Default scopes of the kind followed by the additional ones, deduplicated."""
        return list(dict.fromkeys(default_scopes(self.provider) + self.additional_scopes))

    def callback_url(self, base_url: str) -> str:
        """The OAuth redirect_uri registered at the provider (default BASE_URL/oauth/callback)."""
        return self.fields.get("redirectUrl", f"{base_url}/oauth/callback")

    def public(self, accounts: int, base_url: str) -> dict[str, Any]:
        """The app as the API shows it: never the secret."""
        ends = self.endpoints
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.fields.get("name", self.id),
            "provider": self.provider,
            "clientId": self.client_id,
            "clientSecretSet": self.encrypted_secret is not None,
            "additionalScopes": self.additional_scopes,
            "scopes": self.scopes,
            "redirectUrl": self.callback_url(base_url),
            "authorizationUrl": ends.authorization_url,
            "tokenUrl": ends.token_url,
            "userinfoUrl": ends.userinfo_url,
            "jwksUrl": ends.jwks_url,
            "revocationUrl": ends.revocation_url,
            "issuer": ends.issuer,
            "accounts": accounts,
            "created": self.fields.get("created"),
            "updated": self.fields.get("updated"),
            "error": orjson.loads(self.fields["error"]) if "error" in self.fields else None,
        }
        for name in ("tenant", "cloud"):
            if name in self.fields:
                body[name] = self.fields[name]
        return body


def sealed_record(key: str, app_id: str) -> Record:
    """The app's hash as a sealed record (key rotation, backup)."""
    return bound_record(key, f"app:{app_id}", SEALED_FIELDS)


def app_from_hash(raw: dict[str, str]) -> App | None:
    """Build an App from its Redis hash (None for an empty hash)."""
    if not raw:
        return None
    return App(
        id=raw["id"],
        provider=raw["provider"],
        client_id=raw.get("clientId", ""),
        fields={
            k: v for k, v in raw.items() if k in TEXT_FIELDS or k in ("created", "updated", "error")
        },
        additional_scopes=orjson.loads(raw.get("additionalScopes", "[]")),
        encrypted_secret=raw.get("clientSecret"),
    )


class AppStore:
    """Reads and writes OAuth2 apps."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cipher: Cipher,
        config: Config,
        notify: Invalidate = forget_nothing,
        wants: Wanted = always,
        cache: LocalCache | None = None,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher
        self.config, self.notify, self.wants = config, notify, wants
        self.cache = cache  # this process's cache, read by cached() (None: always Redis)

    async def get(self, app_id: str) -> App | None:
        """Return the app or None."""
        return app_from_hash(await read_hash(self.redis, self.keys.app(app_id)))

    async def require(self, app_id: str) -> App:
        """Return the app or raise AppNotFound."""
        app = await self.get(app_id)
        if app is None:
            raise errors.AppNotFound(f"no OAuth2 app with id {app_id!r}")
        return app

    async def cached(self, app_id: str) -> App:
        """Like require(), through this process's cache when one is attached (hot paths)."""
        if self.cache is None:
            return await self.require(app_id)
        name = CacheNames.app(app_id)
        found = self.cache.get(name)
        if found is MISS:
            epoch = self.cache.epoch
            found = await self.require(app_id)
            self.cache.put(name, found, epoch)
        return cast(App, found)

    async def all(self) -> list[App]:
        """Return every app, ordered by id."""
        ids = sorted(cast(set[str], await self.redis.smembers(self.keys.apps)))
        async with self.redis.pipeline(transaction=False) as pipe:
            for app_id in ids:
                pipe.hgetall(self.keys.app(app_id))
            rows = await pipe.execute()
        return [app for app in map(app_from_hash, rows) if app is not None]

    async def account_count(self, app_id: str) -> int:
        """Return how many accounts use the app, summed over partitions."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for part in range(self.keys.partitions):
                pipe.hget(self.keys.app_counts(part), app_id)
            counts = await pipe.execute()
        return sum(int(c) for c in counts if c)

    def client_secret(self, app: App) -> str | None:
        """Decrypt the app's client secret (for calls to the provider only)."""
        if app.encrypted_secret is None:
            return None
        return self.cipher.decrypt(app.encrypted_secret, f"app:{app.id}:clientSecret")

    async def create(self, body: dict[str, Any], now: str) -> App:
        """Validate and store a new app; raise AppExists when the id is taken."""
        validate.no_unknown(body, INPUT_FIELDS)
        raw_id = body.get("id")
        app_id = validate.app_id(f"app{secrets.token_hex(6)}" if raw_id in (None, "") else raw_id)
        kind = body.get("provider")
        if kind not in KINDS:
            raise errors.InvalidInput(
                f"provider must be one of {', '.join(KINDS)}", details={"field": "provider"}
            )
        validate.string(body, "clientId", required=True, max_len=limits.APP_TEXT_MAX)
        validate.string(body, "clientSecret", required=True, max_len=limits.CLIENT_SECRET_MAX)
        pairs = self._pairs(kind, body, app_id, {})
        pairs.update({"id": app_id, "provider": kind, "v": SCHEMA_VERSION, "created": now})
        pairs["updated"] = now
        if not await self._save(app_id, "create", pairs, []):
            raise errors.AppExists(f"an OAuth2 app with id {app_id!r} exists already")
        return await self.require(app_id)

    async def update(self, app: App, body: dict[str, Any], now: str) -> App:
        """Apply a partial update; endpoint fields are frozen while the app has accounts."""
        validate.no_unknown(body, INPUT_FIELDS - {"id"})
        if "provider" in body and body["provider"] != app.provider:
            raise errors.InvalidInput("provider cannot change", details={"field": "provider"})
        changed = [f for f in FROZEN_FIELDS if f in body and body[f] != app.fields.get(f)]
        if changed and await self.account_count(app.id) > 0:
            raise errors.AppInUse(
                f"{', '.join(changed)} cannot change while the app has accounts",
                details={"fields": changed},
            )
        if "clientId" in body and body["clientId"] is None:
            raise errors.InvalidInput("clientId cannot be removed", details={"field": "clientId"})
        removed = [f for f in TEXT_FIELDS if f in body and body[f] is None]
        kept = {k: v for k, v in app.fields.items() if k not in removed}
        pairs = self._pairs(app.provider, body, app.id, kept)
        pairs["updated"] = now
        if not await self._save(app.id, "update", pairs, removed):
            raise errors.AppNotFound(f"no OAuth2 app with id {app.id!r}")
        return await self.require(app.id)

    async def delete(self, app_id: str) -> None:
        """Delete an app that no account uses."""
        if await self.account_count(app_id) > 0:
            raise errors.AppInUse("the app has accounts; delete them first")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.app(app_id))
            pipe.srem(self.keys.apps, app_id)
            pipe.publish(self.keys.invalidations, CacheNames.app(app_id))
            deleted, _, _ = await pipe.execute()
        self.notify(CacheNames.app(app_id))
        if not deleted:
            raise errors.AppNotFound(f"no OAuth2 app with id {app_id!r}")

    async def set_error(self, app: App, error: dict[str, Any] | None, now_ms: int) -> bool:
        """Flag (or clear) an app-level credentials error; True when the flag changed.

        Flagging records one appCredentialsError per transition.
        """
        data = {"provider": app.provider, "clientId": app.client_id, **(error or {})}
        event = await wanted_event(self.wants, "appCredentialsError", None, app.id, data, now_ms)
        keys = [self.keys.app(app.id), self.keys.global_events]
        flag = orjson.dumps(error).decode() if error is not None else ""
        args = [self.keys.invalidations, app.id, flag, event, CacheNames.app(app.id)]
        changed = int(await self.scripts.run("app_flag", keys, args)) == 1
        self.notify(CacheNames.app(app.id))
        return changed

    async def _save(
        self, app_id: str, mode: str, pairs: dict[str, str], removed: list[str]
    ) -> bool:
        flat = [item for pair in pairs.items() for item in pair]
        keys = [self.keys.apps, self.keys.app(app_id)]
        name = CacheNames.app(app_id)
        args = [app_id, self.keys.invalidations, mode, ",".join(removed), name, *flat]
        saved = bool(await self.scripts.run("app_save", keys, args))
        self.notify(CacheNames.app(app_id))
        return saved

    def _pairs(
        self, kind: str, body: dict[str, Any], app_id: str, kept: dict[str, str]
    ) -> dict[str, str]:
        """Validate the body's fields into hash pairs; `kept` = stored fields that stay."""
        pairs: dict[str, str] = {}
        for name in TEXT_FIELDS:
            value = (
                validate.string(body, name, max_len=limits.APP_TEXT_MAX)
                if body.get(name) is not None
                else None
            )
            if value is not None:
                pairs[name] = value
        self._check_kind_fields(kind, pairs, kept)
        if "additionalScopes" in body:
            extra = validate.scopes(body["additionalScopes"], "additionalScopes")
            pairs["additionalScopes"] = orjson.dumps(extra).decode()
        secret = validate.string(body, "clientSecret", max_len=limits.CLIENT_SECRET_MAX)
        if secret is not None:
            pairs["clientSecret"] = self.cipher.encrypt(secret, f"app:{app_id}:clientSecret")
        return pairs

    def _check_kind_fields(self, kind: str, pairs: dict[str, str], kept: dict[str, str]) -> None:
        urls = [f for f in ("issuer", "redirectUrl", *ENDPOINT_FIELDS) if f in pairs]
        for name in urls:
            allow = self.config.allow_private_urls or name == "redirectUrl"
            check_outbound_url(pairs[name], name, allow_private=allow)
        overrides = [f for f in ("issuer", *ENDPOINT_FIELDS) if f in pairs]
        if kind != "oidc" and overrides and not self.config.allow_endpoint_overrides:
            raise errors.InvalidInput(
                f"{kind} apps use built-in endpoints; overriding {', '.join(overrides)} needs "
                "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES=true",
                details={"fields": overrides},
            )
        if kind == "microsoft":
            tenant = pairs.get("tenant", "common")
            if tenant not in MICROSOFT_TENANTS and not validate.APP_ID.fullmatch(tenant):
                raise errors.InvalidInput("tenant is not valid", details={"field": "tenant"})
            if pairs.get("cloud", "global") not in MICROSOFT_CLOUDS:
                raise errors.InvalidInput(
                    f"cloud must be one of {', '.join(MICROSOFT_CLOUDS)}",
                    details={"field": "cloud"},
                )
        elif "tenant" in pairs or "cloud" in pairs:
            raise errors.InvalidInput("tenant and cloud apply to microsoft apps only")
        if kind == "oidc":
            merged = {**kept, **pairs}
            if "issuer" not in merged and "tokenUrl" not in merged:
                raise errors.InvalidInput(
                    "oidc apps need issuer (for discovery) or tokenUrl",
                    details={"fields": ["issuer", "tokenUrl"]},
                )
