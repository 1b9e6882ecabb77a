"""The settings pages' operator: scrypt password hash, login rate limit, server-side sessions."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

from redis.asyncio import Redis

from service import errors
from service.store.keys import Keys
from service.store.scripts import Scripts

ACCOUNT = "admin"  # the one operator account of the settings pages
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
MIN_PASSWORD = 8
SESSION_TTL_S = 8 * 3600  # a login lasts at most this long
FAIL_WINDOW_S = 15 * 60  # failed logins are counted over this window
IP_LIMIT, ACCOUNT_LIMIT = 5, 20  # failures allowed per window, per IP and per account


class LoginFailed(errors.Unauthorized):
    """Wrong user name or password (a settings page, not the JSON API)."""

    code = "LoginFailed"


class LoginThrottled(errors.ApiError):
    """Too many failed logins from this IP or for this account."""

    status, code = 429, "LoginThrottled"


def hash_password(password: str) -> str:
    """Return 'scrypt$N$r$p$salt$hash' for `password`, with a new random salt."""
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches a hash made by hash_password (constant-time compare)."""
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        expected = base64.b64decode(digest)
        found = _scrypt(password, base64.b64decode(salt), int(n), int(r), int(p))
    except ValueError:
        return False
    return hmac.compare_digest(found, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2**26, dklen=HASH_BYTES
    )


def check_new_password(password: str) -> str:
    """Return `password` when it is long enough to set; raise InvalidInput otherwise."""
    if len(password) < MIN_PASSWORD:
        raise errors.InvalidInput(
            f"the password needs at least {MIN_PASSWORD} characters", details={"field": "password"}
        )
    return password


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins are allowed per window, per IP and per account."""

    ip: int = IP_LIMIT
    account: int = ACCOUNT_LIMIT
    window_s: int = FAIL_WINDOW_S


class AdminAuth:
    """The operator's password, failed-login counters and logged-in sessions, in Redis."""

    def __init__(self, redis: Redis, keys: Keys, limits: LoginLimits | None = None) -> None:
        self.redis, self.keys, self.limits = redis, keys, limits or LoginLimits()
        self.scripts = Scripts(redis)

    async def set_password(self, password: str) -> None:
        """Store a new password (its hash only) and end every logged-in session, in one step.

        Sessions carry the generation they were made in; a new password starts a new one.
        """
        hashed = hash_password(check_new_password(password))
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.admin, "passwordHash", hashed)
            pipe.hincrby(self.keys.admin, "generation", 1)
            await pipe.execute()

    async def set_initial_password(self) -> str | None:
        """Generate and set a password when none is set; return it (shown once) or None."""
        password = secrets.token_urlsafe(15)
        created = await self.redis.hsetnx(self.keys.admin, "passwordHash", hash_password(password))
        return password if created else None

    async def login(self, account: str, password: str, ip: str) -> str:
        """Check a login under the rate limit; return a new session id or raise.

        The attempt is reserved (counted as a failure) before the password is checked, in one
        script, so that concurrent attempts never check more passwords than the limits allow;
        a success gives the reservation back.
        """
        counters = [
            self.keys.login_failures("ip", ip),
            self.keys.login_failures("account", account[:64]),
        ]
        limits = [self.limits.ip, self.limits.account, self.limits.window_s]
        wait_s = int(await self.scripts.run("login_reserve", counters, limits))
        if wait_s:
            raise LoginThrottled(
                "too many failed logins; wait a few minutes and try again",
                headers={"Retry-After": str(wait_s)},
            )
        stored, generation = await self.redis.hmget(self.keys.admin, ["passwordHash", "generation"])
        # scrypt takes ~50 ms of CPU: off the event loop, so the token endpoint is not held up
        good = bool(stored) and await asyncio.to_thread(verify_password, password, str(stored))
        if account != ACCOUNT or not good:
            raise LoginFailed("wrong user name or password")
        sid = secrets.token_urlsafe(24)
        keys = [self.keys.admin_session(sid), *counters]
        await self.scripts.run("login_succeeded", keys, [generation or "0", SESSION_TTL_S])
        return sid

    async def session_valid(self, sid: str) -> bool:
        """True while the session exists (not logged out, not expired) and the password stands."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.get(self.keys.admin_session(sid))
            pipe.hget(self.keys.admin, "generation")
            made_in, current = await pipe.execute()
        return made_in is not None and made_in == (current or "0")

    async def logout(self, sid: str) -> None:
        """End one session."""
        await self.redis.delete(self.keys.admin_session(sid))
