"""Reading EmailEngine's Redis: its key layout, msgpack records and `$wd01$` encrypted values.

Only read commands are sent (SMEMBERS, HGETALL): the source is never written. An account
exists only when its id is in `ia:accounts` and its `iad:<id>` hash has the `account`
field, as EmailEngine itself decides; anything else is a stray record, not an account.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

PREFIX = "$wd01$aes-256-gcm$"
APP_SECRETS = ("clientSecret", "serviceKey", "accessToken", "externalAccount")
OAUTH2_SECRETS = ("accessToken", "refreshToken")
ACCOUNT_FIELDS = ("account", "name", "email", "oauth2")  # read from each iad:<id> hash
BATCH = 500  # accounts read per round trip
SETTINGS_SECRETS = frozenset(
    {
        "serviceSecret",
        "cookiePassword",
        "smtpServerPassword",
        "imapProxyServerPassword",
        "totpSeed",
        "openAiAPIKey",
        "documentStorePassword",
        "gmailClientSecret",
        "outlookClientSecret",
        "mailRuClientSecret",
        "gmailServiceKey",
        "gmailServiceExternalAccount",
    }
)


class EmailEngineError(Exception):
    """EmailEngine's data cannot be read (wrong secret, a malformed record)."""


def decrypt(value: str, secret: str) -> str:
    """Decrypt one EmailEngine value; a value not in the `$wd01$` form is cleartext."""
    if not value.startswith("$"):
        return value
    parts = value.split("$")
    if len(parts) != 7:
        return value
    _, fmt, cipher, tag, iv, salt, body = parts
    if fmt != "wd01" or cipher != "aes-256-gcm":
        raise EmailEngineError(f"unknown encryption format {fmt}/{cipher}")
    try:
        key = hashlib.scrypt(secret.encode(), salt=bytes.fromhex(salt), n=16384, r=8, p=1, dklen=32)
        plain = AESGCM(key).decrypt(bytes.fromhex(iv), bytes.fromhex(body + tag), None)
    except (InvalidTag, ValueError):
        problem = "an encrypted value does not decrypt: is EENGINE_SECRET right?"
        raise EmailEngineError(problem) from None
    return plain.decode()


@dataclass(frozen=True)
class EeKeys:
    """EmailEngine's key names under its prefix (EENGINE_REDIS_PREFIX)."""

    prefix: str = ""

    @property
    def apps(self) -> str:
        """Set of every app id."""
        return f"{self.prefix}oapp:i"

    @property
    def app_records(self) -> str:
        """Hash of `<appId>:data` msgpack app records."""
        return f"{self.prefix}oapp:c"

    @property
    def accounts(self) -> str:
        """Set of every account id."""
        return f"{self.prefix}ia:accounts"

    def account(self, account_id: str) -> str:
        """The hash of one account."""
        return f"{self.prefix}iad:{account_id}"

    @property
    def settings(self) -> str:
        """Hash of JSON-encoded settings."""
        return f"{self.prefix}settings"

    @property
    def tokens(self) -> str:
        """Hash of API token id -> msgpack record."""
        return f"{self.prefix}tokens"


@dataclass(frozen=True)
class EeAccount:
    """One EmailEngine account, its oauth2 object decrypted (None: not an OAuth2 account)."""

    id: str
    name: str | None
    email: str | None
    oauth2: dict[str, Any] | None = field(repr=False)


@dataclass(frozen=True)
class EeToken:
    """One EmailEngine API token: `id` is sha256 of the token's 32 raw bytes, in hex."""

    id: str
    record: dict[str, Any]


@dataclass
class EeData:
    """Everything the importer takes from EmailEngine, secrets decrypted."""

    apps: dict[str, dict[str, Any]] = field(default_factory=dict)
    accounts: list[EeAccount] = field(default_factory=list)
    tokens: list[EeToken] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict, repr=False)
    strays: list[str] = field(default_factory=list)


def _text(value: bytes | None) -> str | None:
    return value.decode() if value is not None else None


def _unpack(raw: bytes) -> dict[str, Any]:
    try:
        found = msgpack.unpackb(raw, raw=False, timestamp=0)
    except (ValueError, msgpack.UnpackException) as exc:
        raise EmailEngineError(f"a msgpack record does not decode: {exc}") from None
    if not isinstance(found, dict):
        raise EmailEngineError("a msgpack record is not a map")
    return cast(dict[str, Any], found)


class EeReader:
    """Reads apps, accounts, API tokens and settings from EmailEngine's Redis."""

    def __init__(self, redis: Redis, secret: str, prefix: str = "") -> None:
        self.redis, self.secret, self.keys = redis, secret, EeKeys(prefix)

    async def read(self) -> EeData:
        """Read and decrypt everything the importer needs."""
        data = EeData(apps=await self.apps(), tokens=await self.tokens())
        data.accounts, data.strays = await self.accounts()
        data.settings = await self.settings()
        return data

    async def apps(self) -> dict[str, dict[str, Any]]:
        """Every app in `oapp:i`, by id, with its secrets decrypted."""
        ids = sorted(
            s.decode() for s in cast(set[bytes], await self.redis.smembers(self.keys.apps))
        )
        stored = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.app_records))
        apps: dict[str, dict[str, Any]] = {}
        for app_id in ids:
            raw = stored.get(f"{app_id}:data".encode())
            if raw is None:
                continue
            record = _unpack(raw)
            for name in APP_SECRETS:
                if isinstance(record.get(name), str):
                    record[name] = decrypt(record[name], self.secret)
            apps[app_id] = record
        return apps

    async def accounts(self) -> tuple[list[EeAccount], list[str]]:
        """Every account (ids sorted) and the ids whose record is a stray."""
        ids = sorted(
            s.decode() for s in cast(set[bytes], await self.redis.smembers(self.keys.accounts))
        )
        found: list[EeAccount] = []
        strays: list[str] = []
        for start in range(0, len(ids), BATCH):
            batch = ids[start : start + BATCH]
            async with self.redis.pipeline(transaction=False) as pipe:
                for account_id in batch:
                    pipe.hmget(self.keys.account(account_id), ACCOUNT_FIELDS)
                rows = await pipe.execute()
            for account_id, (marker, name, email, oauth2) in zip(batch, rows, strict=True):
                if marker is None:  # no `account` field: a leftover, not an account
                    strays.append(account_id)
                    continue
                account = EeAccount(account_id, _text(name), _text(email), self._oauth2(oauth2))
                found.append(account)
        return found, strays

    def _oauth2(self, raw: bytes | None) -> dict[str, Any] | None:
        if not raw:
            return None
        value = orjson.loads(raw)
        if not isinstance(value, dict):
            return None
        for name in OAUTH2_SECRETS:
            if isinstance(value.get(name), str):
                value[name] = decrypt(value[name], self.secret)
        return cast(dict[str, Any], value)

    async def tokens(self) -> list[EeToken]:
        """Every API token record, by its id (sorted)."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.tokens))
        return sorted(
            (EeToken(id=k.decode(), record=_unpack(v)) for k, v in raw.items()),
            key=lambda t: t.id,
        )

    async def settings(self) -> dict[str, Any]:
        """The settings hash, every value JSON-decoded (encrypted ones decrypted first)."""
        raw = cast(dict[bytes, bytes], await self.redis.hgetall(self.keys.settings))
        values: dict[str, Any] = {}
        for key, value in raw.items():
            name, text = key.decode(), value.decode()
            if text.startswith(PREFIX):
                text = decrypt(text, self.secret)
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError:
                decoded = text
            if name in SETTINGS_SECRETS and isinstance(decoded, str) and decoded.startswith(PREFIX):
                decoded = orjson.loads(decrypt(decoded, self.secret))
            values[name] = decoded
        return values
