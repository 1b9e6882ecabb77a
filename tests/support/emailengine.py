"""EmailEngine's recorded Redis (fixtures dataset A): loading it and comparing Redis contents."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any, cast

import msgpack  # type: ignore[import-untyped]
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emailengine"
MANIFEST = json.loads((FIXTURES / "manifest-A.json").read_text())
EE_DB = 1  # EmailEngine's data sits in its own logical database of the test Redis
SEALED_APP_FIELDS = ("clientSecret", "serviceKey")


def _bytes(value: Any) -> bytes:
    if isinstance(value, dict):
        return base64.b64decode(value["b64"])
    return str(value).encode()


async def load_dump(redis: Redis, path: Path, prefix: str = "") -> None:
    """Restore every key of a dump by its type (the fixtures README's format).

    TTLs are left out: a key expiring during the test would look like a write.
    """
    dump = json.loads(await asyncio.to_thread(path.read_text))
    for name, entry in dump["keys"].items():
        key, kind, value = prefix.encode() + _bytes(name), entry["type"], entry["value"]
        if kind == "string":
            await redis.set(key, _bytes(value))
        elif kind == "hash":
            await redis.hset(key, mapping={_bytes(k): _bytes(v) for k, v in value.items()})
        elif kind == "set":
            await redis.sadd(key, *[_bytes(m) for m in value])
        elif kind == "list":
            await redis.rpush(key, *[_bytes(m) for m in value])
        elif kind == "zset":
            await redis.zadd(key, {_bytes(m): float(s) for m, s in value})
        elif kind == "stream":
            for entry_id, fields in value:
                mapping: dict[Any, Any] = {_bytes(k): _bytes(v) for k, v in fields.items()}
                await redis.xadd(key, mapping, id=entry_id)


async def snapshot(redis: Redis) -> dict[bytes, Any]:
    """Every key's type and content, order-free.

    A DUMP of a hashtable-encoded hash or set lists its fields in the table's order, which
    rehashing changes without any write.
    """
    found: dict[bytes, Any] = {}
    async for key in redis.scan_iter(count=500):
        kind = await redis.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else kind
        if kind == "hash":
            value: Any = sorted((await redis.hgetall(key)).items())
        elif kind == "set":
            value = sorted(await redis.smembers(key))
        elif kind == "zset":
            value = await redis.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            value = await redis.lrange(key, 0, -1)
        elif kind == "stream":
            value = await redis.xrange(key)
        else:
            value = await redis.get(key)
        found[key] = (kind, value, await redis.ttl(key) >= 0)
    return found


async def dumps(redis: Redis) -> dict[bytes, bytes]:
    """DUMP of every key, except the field order of hashtable-encoded hashes and sets.

    Their DUMP lists fields in table order, which a read can change (a read moves an
    incremental rehash on); their content is compared by snapshot() instead.
    """
    found: dict[bytes, bytes] = {}
    async for key in redis.scan_iter(count=500):
        serialized = cast(bytes, await redis.dump(key))
        encoding = await redis.object("encoding", key)
        found[key] = b"hashtable" if encoding in (b"hashtable", "hashtable") else serialized
    return found


def ee_encrypt(value: str, secret: str) -> str:
    """A value encrypted as EmailEngine stores it (`$wd01$aes-256-gcm$tag$iv$salt$body`)."""
    salt, iv = os.urandom(16), os.urandom(12)
    key = hashlib.scrypt(secret.encode(), salt=salt, n=16384, r=8, p=1, dklen=32)
    sealed = AESGCM(key).encrypt(iv, value.encode(), None)
    body, tag = sealed[:-16], sealed[-16:]
    return f"$wd01$aes-256-gcm${tag.hex()}${iv.hex()}${salt.hex()}${body.hex()}"


async def put_ee_app(redis: Redis, app_id: str, record: dict[str, Any], secret: str) -> None:
    """Write one app as EmailEngine does: its id in oapp:i, msgpack in oapp:c, secrets sealed."""
    sealed = {k: ee_encrypt(v, secret) if k in SEALED_APP_FIELDS else v for k, v in record.items()}
    packed = msgpack.packb({"id": app_id, **sealed}, use_bin_type=True)
    await redis.sadd("oapp:i", app_id)
    await redis.hset("oapp:c", f"{app_id}:data", packed)


async def put_ee_account(redis: Redis, account_id: str, app_id: str, user: str) -> None:
    """Write one account of a service-account app as EmailEngine does: a mailbox, no tokens."""
    oauth2 = {"provider": app_id, "auth": {"user": user}}
    await redis.sadd("ia:accounts", account_id)
    fields: dict[Any, Any] = {
        "account": account_id,
        "name": user,
        "email": user,
        "oauth2": json.dumps(oauth2),
    }
    await redis.hset(f"iad:{account_id}", mapping=fields)
