"""API tokens: random bearer secrets stored only as SHA-256, with scopes and bindings.

Native tokens are found by the SHA-256 of the token text. Tokens imported from EmailEngine
are stored as it stores them, the SHA-256 of the token's 32 raw bytes, and marked so
(`hash` = `raw`); they are looked up that way only after the native lookup missed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any, cast

import orjson
from redis.asyncio import Redis

from service import errors, validate
from service.clock import iso
from service.crypto.cipher import sha256_hex
from service.limits import DESCRIPTION_MAX
from service.resources import resource_name, valid_resource_name
from service.store.cache import Invalidate, forget_nothing
from service.store.connection import as_mapping, read_hash
from service.store.keys import CacheNames, Keys

SCOPES = ("api", "oauth-tokens", "metrics", "audit", "*")
RAW_HEX = re.compile(r"[0-9a-fA-F]{64}")
HASH_FORM = "hash"  # record field: "raw" when the digest is of the token's raw bytes
RAW_FORM = "raw"


def raw_digest(token: str) -> str | None:
    """SHA-256 hex of a 64-hex-digit token's 32 raw bytes (EmailEngine's form), else None."""
    if not RAW_HEX.fullmatch(token):
        return None
    return hashlib.sha256(bytes.fromhex(token)).hexdigest()


@dataclass(frozen=True)
class ApiToken:
    """What is known of a token without knowing the token."""

    id: str
    digest: str
    scopes: tuple[str, ...]
    account: str | None
    description: str | None
    created_ms: int
    expires_at_ms: int | None
    last_used_ms: int | None = None
    raw_bytes: bool = False  # imported: its digest is of the token's raw bytes
    resources: tuple[str, ...] | None = None  # token endpoint resources it may ask (None: any)

    def allows(self, scope: str) -> bool:
        """True when the token carries `scope` or `*`."""
        return "*" in self.scopes or scope in self.scopes

    def allows_resource(self, name: str, audience: str | None = None) -> None:
        """Raise ResourceNotAllowed unless the token may ask for resource `name` (or its URI)."""
        if self.resources is not None and not {name, audience} & set(self.resources):
            raise errors.ResourceNotAllowed(
                f"the API token may not ask for the resource {name[:200]!r}",
                details={"resource": name[:200], "allowed": list(self.resources)},
            )

    def public(self) -> dict[str, Any]:
        """The token's metadata as the API and CLI show it (never the token)."""
        return {
            "id": self.id,
            "scopes": list(self.scopes),
            "account": self.account,
            "description": self.description,
            "created": iso(self.created_ms),
            "expires": iso(self.expires_at_ms) if self.expires_at_ms else None,
            "lastUsed": iso(self.last_used_ms) if self.last_used_ms else None,
            **({"resources": list(self.resources)} if self.resources is not None else {}),
        }


def token_from_hash(digest: str, raw: dict[str, str]) -> ApiToken | None:
    """Build an ApiToken from its Redis hash (None for an empty hash)."""
    if not raw:
        return None
    return ApiToken(
        id=raw["id"],
        digest=digest,
        scopes=tuple(orjson.loads(raw["scopes"])),
        account=raw.get("account") or None,
        description=raw.get("description") or None,
        created_ms=int(raw["created"]),
        expires_at_ms=int(raw["expires"]) if raw.get("expires") else None,
        last_used_ms=int(raw["lastUsed"]) if raw.get("lastUsed") else None,
        raw_bytes=raw.get(HASH_FORM) == RAW_FORM,
        resources=tuple(orjson.loads(raw["resources"])) if raw.get("resources") else None,
    )


def check_access(token: ApiToken | None, scope: str, account: str | None, now_ms: int) -> ApiToken:
    """Return the token when it may use `scope` (on `account`); raise 401/403 otherwise."""
    if token is None:
        raise errors.Unauthorized("Bad token")
    if token.expires_at_ms is not None and token.expires_at_ms <= now_ms:
        raise errors.Unauthorized("the API token has expired")
    if not token.allows(scope):
        raise errors.Forbidden(f"the API token lacks the {scope!r} scope")
    if token.account is not None and token.account != account:
        raise errors.Forbidden("the API token is bound to another account")
    return token


class ApiTokenStore:
    """Creates, finds, lists and revokes API tokens."""

    def __init__(self, redis: Redis, keys: Keys, notify: Invalidate = forget_nothing) -> None:
        self.redis, self.keys, self.notify = redis, keys, notify

    async def create(
        self,
        scopes: list[str],
        account: str | None,
        description: str | None,
        expires_at_ms: int | None,
        now_ms: int,
        resources: list[str] | None = None,
    ) -> tuple[str, ApiToken]:
        """Create a token; returns (the token, shown this once, and its metadata).

        `resources` limits what it may ask the token endpoint for (service/resources.py).
        """
        bad = [s for s in scopes if s not in SCOPES]
        if not scopes or bad:
            raise errors.InvalidInput(f"scopes must be some of {', '.join(SCOPES)}")
        if resources is not None:
            resources = [resource_name(r) for r in resources]
        if resources is not None and (
            not resources or not all(valid_resource_name(r) for r in resources)
        ):
            raise errors.InvalidInput(
                "resources must list default, outlook, graph or audience URIs",
                details={"field": "resources"},
            )
        if account is not None:  # "" too: an empty binding must not mean "every account"
            validate.account_id(account)
        if description is not None and len(description) > DESCRIPTION_MAX:
            raise errors.InvalidInput(
                f"description must be at most {DESCRIPTION_MAX} characters",
                details={"field": "description"},
            )
        token = secrets.token_hex(32)
        digest = sha256_hex(token)
        record = {
            "id": secrets.token_hex(8),
            "scopes": orjson.dumps(scopes).decode(),
            "created": str(now_ms),
        }
        if account:
            record["account"] = account
        if description:
            record["description"] = description
        if expires_at_ms is not None:
            record["expires"] = str(expires_at_ms)
        if resources is not None:
            record["resources"] = orjson.dumps(list(dict.fromkeys(resources))).decode()
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.api_token(digest), mapping=as_mapping(record))
            pipe.hset(self.keys.api_token_ids, record["id"], digest)
            await pipe.execute()
        found = token_from_hash(digest, record)
        assert found is not None  # noqa: S101 - built from a non-empty record
        return token, found

    async def find(self, token: str) -> ApiToken | None:
        """Look a presented bearer token up by its digest (then as an imported one)."""
        digest = sha256_hex(token)
        found = token_from_hash(digest, await read_hash(self.redis, self.keys.api_token(digest)))
        alt = raw_digest(token) if found is None else None
        if alt is not None:
            found = token_from_hash(alt, await read_hash(self.redis, self.keys.api_token(alt)))
            return found if found is not None and found.raw_bytes else None
        return found

    async def import_raw(
        self,
        digest: str,
        scopes: list[str],
        account: str | None,
        description: str | None,
        created_ms: int,
    ) -> bool:
        """Store a token known only by the SHA-256 of its raw bytes; False when it is stored so.

        Its id is the digest's first 16 hex digits, so importing again finds the same token.
        """
        record = {
            "id": digest[:16],
            "scopes": orjson.dumps(scopes).decode(),
            "created": str(created_ms),
            HASH_FORM: RAW_FORM,
        }
        if account:
            record["account"] = validate.account_id(account)
        if description:
            record["description"] = description[:DESCRIPTION_MAX]
        stored = await read_hash(self.redis, self.keys.api_token(digest))
        if {k: v for k, v in stored.items() if k != "lastUsed"} == record:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.api_token(digest))
            pipe.hset(self.keys.api_token(digest), mapping=as_mapping(record))
            pipe.hset(self.keys.api_token_ids, record["id"], digest)
            pipe.publish(self.keys.invalidations, CacheNames.api_token(digest))
            await pipe.execute()
        self.notify(CacheNames.api_token(digest))
        return True

    async def all(self) -> list[ApiToken]:
        """Return every token's metadata, oldest first."""
        digests = list((await read_hash(self.redis, self.keys.api_token_ids)).values())
        async with self.redis.pipeline(transaction=False) as pipe:
            for digest in digests:
                pipe.hgetall(self.keys.api_token(digest))
            rows = await pipe.execute()
        found = [token_from_hash(d, r) for d, r in zip(digests, rows, strict=True)]
        return sorted((t for t in found if t is not None), key=lambda t: t.created_ms)

    async def revoke(self, token_id: str) -> None:
        """Delete a token by id; every web process forgets it within a second."""
        digest = cast(str | None, await self.redis.hget(self.keys.api_token_ids, token_id))
        if digest is None:
            raise errors.TokenNotFound(f"no API token with id {token_id!r}")
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(self.keys.api_token(digest))
            pipe.hdel(self.keys.api_token_ids, token_id)
            pipe.publish(self.keys.invalidations, CacheNames.api_token(digest))
            await pipe.execute()
        self.notify(CacheNames.api_token(digest))
