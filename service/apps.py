"""OAuth2 apps: validation of their input and their storage in Redis."""

from __future__ import annotations

import dataclasses
import secrets
from dataclasses import dataclass, field
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from service import app_credentials, errors, validate
from service.account_record import endpoints_fingerprint
from service.app_input import (
    FROZEN_FIELDS,
    INPUT_FIELDS,
    SEALED_FIELDS,
    TEXT_FIELDS,
    check_kind_fields,
    list_pairs,
    require_create_fields,
    sealed_pairs,
    text_pairs,
    with_key_file_fields,
)
from service.app_mail import MAIL_FIELDS, mail_pairs, mail_view
from service.config import Config
from service.crypto.cipher import Cipher
from service.crypto.credentials import ClientCredential, Slot
from service.crypto.sealed import Record, bound_record
from service.providers import (
    SERVICE_KINDS,
    Endpoints,
    app_only_scopes,
    builtin_endpoints,
    current_cloud,
    current_kind,
    default_scopes,
)
from service.store.cache import MISS, Invalidate, LocalCache, forget_nothing
from service.store.connection import read_hash
from service.store.keys import CacheNames, Keys
from service.store.scripts import Scripts
from service.webhooks.events import Wanted, always, wanted_event

SCHEMA_VERSION = "2"  # 2: EmailEngine's provider types and scope presets
MASKED = "******"


@dataclass(frozen=True)
class App:
    """One OAuth2 app as stored (the client secret and service key stay encrypted)."""

    id: str
    provider: str
    client_id: str
    fields: dict[str, str] = field(default_factory=dict)
    additional_scopes: list[str] = field(default_factory=list)
    encrypted_secret: str | None = field(default=None, repr=False)
    skip_scopes: list[str] = field(default_factory=list)
    encrypted_service_key: str | None = field(default=None, repr=False)
    encrypted: dict[str, str] = field(default_factory=dict, repr=False)  # client credentials

    @property
    def cloud(self) -> str:
        """The Microsoft cloud (global unless set)."""
        return self.fields.get("cloud", "global")

    @property
    def enabled(self) -> bool:
        """Whether users may connect accounts (service-account apps always count as enabled)."""
        return self.provider in SERVICE_KINDS or self.fields.get("enabled", "true") == "true"

    @property
    def endpoints(self) -> Endpoints:
        """Built-in endpoints of the type, overridden by the app's own."""
        base = builtin_endpoints(self.provider, self.fields.get("tenant", "common"), self.cloud)
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
        """The base scope preset with the extra scopes on top, less the skipped ones.

        An outlookService app asks for one resource's `.default` (its application permissions).
        """
        if self.provider == "outlookService":
            return app_only_scopes(self.cloud, self.fields.get("baseScopes"))
        return default_scopes(
            self.provider,
            self.fields.get("baseScopes"),
            self.cloud,
            self.additional_scopes,
            self.skip_scopes,
        )

    def callback_url(self, base_url: str) -> str:
        """The OAuth redirect_uri registered at the provider (default BASE_URL/oauth/callback)."""
        return self.fields.get("redirectUrl", f"{base_url}/oauth/callback")

    def public(self, accounts: int | None, base_url: str) -> dict[str, Any]:
        """The app as EmailEngine shows it, with tokenbroker's additions; never a secret."""
        return {**ee_view(self, base_url), **self._additions(base_url, accounts)}

    def _additions(self, base_url: str, accounts: int | None) -> dict[str, Any]:
        ends = self.endpoints
        body: dict[str, Any] = {
            "clientSecretSet": self.encrypted_secret is not None,
            "credentials": app_credentials.describe(self),
            "additionalScopes": self.additional_scopes,
            "scopes": self.scopes,
            "redirectUrl": self.callback_url(base_url),
            "authorizationUrl": ends.authorization_url,
            "tokenUrl": ends.token_url,
            "userinfoUrl": ends.userinfo_url,
            "jwksUrl": ends.jwks_url,
            "revocationUrl": ends.revocation_url,
            "issuer": ends.issuer,
            "updated": self.fields.get("updated"),
            "error": orjson.loads(self.fields["error"]) if "error" in self.fields else None,
        }
        body.update(
            {k: self.fields[k] for k in ("publishingStatus", "platform") if k in self.fields}
        )
        body.update(mail_view(self.fields))
        if accounts is not None:
            body["accounts"] = accounts
        return body


EE_TEXT = ("description", "title", "baseScopes", "serviceClient", "serviceClientEmail")


def ee_view(app: App, base_url: str) -> dict[str, Any]:
    """The fields EmailEngine reports for an app (secrets as ******)."""
    body: dict[str, Any] = {
        "id": app.id,
        "name": app.fields.get("name", app.id),
        "provider": app.provider,
        "enabled": app.enabled,
    }
    if app.client_id:
        body["clientId"] = app.client_id
    if app.encrypted_secret is not None:
        body["clientSecret"] = MASKED
    if app.encrypted_service_key is not None:
        body["serviceKey"] = MASKED
    body.update({k: app.fields[k] for k in EE_TEXT if k in app.fields})
    if app.additional_scopes:
        body["extraScopes"] = app.additional_scopes
    if app.skip_scopes:
        body["skipScopes"] = app.skip_scopes
    if "tenant" in app.fields:
        body["authority"] = body["tenant"] = app.fields["tenant"]
    if app.provider in ("outlook", "outlookService"):
        body["cloud"] = app.cloud
    if app.provider == "gmailService":
        body["authMethod"] = "serviceKey"
    body["created"] = app.fields.get("created")
    body["includeInListing"] = app.provider not in SERVICE_KINDS
    return body


def sealed_record(key: str, app_id: str) -> Record:
    """The app's hash as a sealed record (key rotation, backup)."""
    return bound_record(key, f"app:{app_id}", SEALED_FIELDS)


STORED = {
    *TEXT_FIELDS,
    *MAIL_FIELDS,
    *app_credentials.PLAIN,
    "created",
    "updated",
    "error",
    "enabled",
}
CREDENTIALS = ("clientSecret", *app_credentials.SEALED)


def app_from_hash(raw: dict[str, str]) -> App | None:
    """Build an App from its Redis hash (None for an empty hash).

    Records of earlier versions are read as today's: google/microsoft are gmail/outlook,
    cloud usgov is gcc-high, and an app without the schema version 2 and without
    baseScopes keeps asking for only the OpenID scopes it asked for then (baseScopes none).
    """
    if not raw:
        return None
    fields = {k: v for k, v in raw.items() if k in STORED}
    if "cloud" in fields:
        fields["cloud"] = current_cloud(fields["cloud"])
    if raw.get("v", "1") == "1" and "baseScopes" not in fields:
        fields["baseScopes"] = "none"
    return App(
        id=raw["id"],
        provider=current_kind(raw["provider"]),
        client_id=raw.get("clientId", ""),
        fields=fields,
        additional_scopes=orjson.loads(raw.get("additionalScopes", "[]")),
        encrypted_secret=raw.get("clientSecret"),
        skip_scopes=orjson.loads(raw.get("skipScopes", "[]")),
        encrypted_service_key=raw.get("serviceKey"),
        encrypted={k: raw[k] for k in CREDENTIALS if k in raw},
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
        """Decrypt the app's current client secret (for calls to the provider only)."""
        if app.encrypted_secret is None:
            return None
        return self.cipher.decrypt(app.encrypted_secret, f"app:{app.id}:clientSecret")

    def credentials(self, app: App) -> list[ClientCredential]:
        """The app's client credentials, decrypted, the one in use first (provider calls only)."""
        return app_credentials.ordered(app, self.cipher)

    def credential(self, app: App) -> ClientCredential | None:
        """The credential in use (None: the app sends its client id alone)."""
        found = self.credentials(app)
        return found[0] if found else None

    async def use_slot(self, app: App, slot: Slot) -> None:
        """Record which credential the provider accepted, so later calls try it first."""
        if app_credentials.in_use(app) != slot:
            await self._save(app.id, "update", {app_credentials.IN_USE: slot}, [])

    async def promote(self, app: App, now: str) -> App:
        """Make the next credential the current one (NoNextCredential when there is none)."""
        pairs, removed = app_credentials.promotion(app, self.cipher)
        pairs["updated"] = now
        if not await self._save(app.id, "update", pairs, removed):
            raise errors.AppNotFound(f"no OAuth2 app with id {app.id!r}")
        return await self.require(app.id)

    def service_key(self, app: App) -> str | None:
        """Decrypt a gmailService app's key (for signing assertions only)."""
        if app.encrypted_service_key is None:
            return None
        return self.cipher.decrypt(app.encrypted_service_key, f"app:{app.id}:serviceKey")

    async def create(self, body: dict[str, Any], now: str) -> App:
        """Validate and store a new app; raise AppExists when the id is taken."""
        validate.no_unknown(body, INPUT_FIELDS)
        raw_id = body.get("id")
        app_id = validate.app_id(f"app{secrets.token_hex(6)}" if raw_id in (None, "") else raw_id)
        body = with_key_file_fields(body.get("provider"), body)
        kind = require_create_fields(body.get("provider"), body)
        pairs = self._pairs(kind, body, app_id, {})
        pairs.update({"id": app_id, "provider": kind, "v": SCHEMA_VERSION, "created": now})
        pairs["updated"] = now
        if not await self._save(app_id, "create", pairs, []):
            raise errors.AppExists(f"an OAuth2 app with id {app_id!r} exists already")
        return await self.require(app_id)

    async def update(self, app: App, body: dict[str, Any], now: str) -> App:
        """Apply a partial update; endpoint fields are frozen while the app has accounts."""
        validate.no_unknown(body, INPUT_FIELDS - {"id", "provider"})
        if "clientId" in body and body["clientId"] is None:
            raise errors.InvalidInput("clientId cannot be removed", details={"field": "clientId"})
        removed = [f for f in (*TEXT_FIELDS, *MAIL_FIELDS) if f in body and body[f] is None]
        kept = {k: v for k, v in app.fields.items() if k not in removed}
        pairs = self._pairs(app.provider, body, app.id, kept)
        removed += app_credentials.removed_fields(body, pairs)
        changed = [f for f in FROZEN_FIELDS if f in pairs and pairs[f] != app.fields.get(f)]
        changed += [f for f in FROZEN_FIELDS if f in removed and f in app.fields]
        if changed and await self.account_count(app.id) > 0:
            raise errors.AppInUse(
                f"{', '.join(changed)} cannot change while the app has accounts",
                details={"fields": changed},
            )
        pairs["updated"] = now
        pairs["v"] = SCHEMA_VERSION
        if app.fields.get("baseScopes") == "none" and "baseScopes" not in pairs:
            pairs["baseScopes"] = "none"  # an upgraded record keeps what it asked for
        if not await self._save(app.id, "update", pairs, removed):
            raise errors.AppNotFound(f"no OAuth2 app with id {app.id!r}")
        # fetched again with what is new, and asked again at once
        await self.redis.delete(self.keys.app_token(app.id), self.keys.app_refused(app.id))
        return await self.require(app.id)

    async def delete(self, app_id: str, *, with_accounts: bool = False) -> None:
        """Delete an app that no account uses (`with_accounts`: whose accounts go next)."""
        if not with_accounts and await self.account_count(app_id) > 0:
            raise errors.AppInUse("the app has accounts; delete them first")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.app(app_id))
            pipe.srem(self.keys.apps, app_id)
            pipe.publish(self.keys.invalidations, CacheNames.app(app_id))
            pipe.delete(self.keys.app_token(app_id), self.keys.app_refused(app_id))
            deleted, _, _, _ = await pipe.execute()
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
        pairs = text_pairs(body)
        check_kind_fields(kind, pairs, kept, self.config)
        pairs.update(list_pairs(body))
        pairs.update(mail_pairs(body, self.config))
        pairs.update(sealed_pairs(kind, body, app_id, self.cipher))
        pairs.update(app_credentials.input_pairs(kind, body, app_id, self.cipher))
        return pairs
