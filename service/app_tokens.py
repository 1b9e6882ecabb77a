"""An app's own token (client credentials): one per app, kept in Redis, fetched by one process.

Every account of an outlookService app is served the app's token. The token is sealed in one
hash per app that lapses at the token's expiry; when it is missing or about to expire, the
process that takes the app's lock fetches a new one and every other waits for it and reads
it: the provider sees one request per app per lifetime, however many accounts the app has.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable

import orjson
import structlog
from redis.asyncio import Redis

from service.apps import App
from service.clock import Clock, iso
from service.crypto.cipher import Cipher, DecryptError
from service.oauth.client import Failure, Granted, OAuthClient, RefreshResult
from service.refresh_lock import take
from service.store.connection import as_mapping, read_hash
from service.store.keys import Keys
from service.store.scripts import Scripts

Fetch = Callable[[], Awaitable[RefreshResult]]  # asks the provider for the app's token

log = structlog.get_logger("refresh")
LOCK_POLL_S = 0.02
REFUSED_MEMO_MS = 30_000  # an app refused this recently is not asked again for each account
SAME_LIFETIME = 0.9  # a token this fresh is as good as a new one would be


class AppTokens:
    """Reads an app's cached token, or fetches it once for everyone who needs it."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        scripts: Scripts,
        cipher: Cipher,
        oauth: OAuthClient,
        clock: Clock,
        lock_ms: int,
        wait_s: float,
    ) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher
        self.oauth, self.clock, self.lock_ms, self.wait_s = oauth, clock, lock_ms, wait_s
        self._background: set[asyncio.Task[None]] = set()

    async def token(
        self, app: App, fetch: Fetch, min_valid_ms: int, force: bool = False
    ) -> RefreshResult:
        """The app's token valid for `min_valid_ms` (or as fresh as a new one); never raises.

        `fetch` asks the provider for a new one (the client-credentials grant).
        """
        deadline = time.monotonic() + self.wait_s
        lock_key = self.keys.app_token_lock(app.id)
        while True:
            cached = await self.cached(app)
            if cached is not None and not force and self._good(cached, min_valid_ms):
                return cached
            lock = await take(
                self.redis, self.scripts, lock_key, secrets.token_hex(16), self.lock_ms
            )
            if lock is not None:
                try:
                    cached = await self.cached(app)
                    if cached is not None and self._good(cached, min_valid_ms):
                        return cached
                    return await self._fetch(app, fetch)
                finally:
                    await asyncio.shield(lock.release(self._background))
            while await self.redis.exists(lock_key):
                if time.monotonic() > deadline:
                    return Failure("transient", "refresh_in_progress", "the app's token is coming")
                await asyncio.sleep(LOCK_POLL_S)
            force = False  # another process fetched it meanwhile

    def _good(self, cached: Granted, min_valid_ms: int) -> bool:
        left = cached.expires_at_ms - self.clock.now_ms()
        return left >= min(min_valid_ms, int(cached.lifetime_s * 1000 * SAME_LIFETIME))

    async def _fetch(self, app: App, fetch: Fetch) -> RefreshResult:
        result = await fetch()
        if isinstance(result, Granted):
            await self._store(app, result)
            log.info("app_token_fetched", app=app.id, expires=iso(result.expires_at_ms))
        return result

    async def cached(self, app: App) -> Granted | None:
        """The app's stored token, or None (none, expired, or sealed under a retired key)."""
        raw = await read_hash(self.redis, self.keys.app_token(app.id))
        if not raw.get("token"):
            return None
        try:
            token = self.cipher.decrypt(raw["token"], _aad(app.id))
        except DecryptError:
            return None
        scope = raw.get("scope")
        return Granted(
            access_token=token,
            refresh_token=None,
            lifetime_s=int(raw["lifetimeS"]),
            expires_at_ms=int(raw["expiresAt"]),
            scopes=scope.split() if scope else None,
        )

    async def _store(self, app: App, granted: Granted) -> None:
        fields = {
            "token": self.cipher.encrypt(granted.access_token, _aad(app.id)),
            "expiresAt": str(granted.expires_at_ms),
            "lifetimeS": str(granted.lifetime_s),
            "scope": " ".join(granted.scopes or []),
        }
        key = self.keys.app_token(app.id)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=as_mapping(fields))
            pipe.pexpireat(key, granted.expires_at_ms)
            await pipe.execute()

    async def refused(self, app: App) -> Failure | None:
        """The provider's refusal of the app's credentials, if one came in the last moments."""
        raw = await self.redis.get(self.keys.app_refused(app.id))
        if not raw:
            return None
        data = orjson.loads(raw)
        return Failure(
            "app",
            str(data["error"]),
            data.get("error_description"),
            data.get("status"),
            reason=data.get("reason"),
        )

    async def remember_refusal(self, app: App, failure: Failure) -> None:
        """Keep an app-level refusal briefly: the app's other accounts get it without a call."""
        data = orjson.dumps(failure.details()).decode()
        await self.redis.set(self.keys.app_refused(app.id), data, px=REFUSED_MEMO_MS)


def _aad(app_id: str) -> str:
    return f"app:{app_id}:appToken"
