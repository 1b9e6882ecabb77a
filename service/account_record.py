"""The account record: its field names, the Account read from it, and the one builder of it.

Every path that writes an account (import, consent, refresh, backup restore, key rotation,
test fixtures) builds its hash fields with `account_fields`; the Lua scripts that change
accounts use the same names (tests/test_account_record.py checks that they use no other).

The grant generation (`grantGen`) fences the record: every script that replaces the grant
(import, consent, restore) moves it forward, and every script that records the result of a
provider call writes only while it still holds the generation the caller read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

from service.clock import iso
from service.crypto.cipher import Cipher
from service.crypto.sealed import Record, bound_record
from service.providers import current_kind

SCHEMA_VERSION = "1"


class Status(StrEnum):
    """An account's status: refreshed on schedule, or waiting for its user to consent again."""

    ACTIVE = "active"
    REAUTH_REQUIRED = "reauth_required"


STATUSES = tuple(status.value for status in Status)  # plain strings (JSON keys, enums)


class F:
    """Field names of the account hash (the Lua scripts use the same literals)."""

    VERSION = "v"
    ID = "account"
    APP = "app"
    PROVIDER = "provider"
    USER = "user"
    NAME = "name"
    STATUS = "status"
    REASON = "reason"
    SCOPES = "scopes"
    MISSING_SCOPES = "missingScopes"
    EXPIRES_AT = "expiresAt"
    LIFETIME = "lifetimeMs"
    REFRESHED_AT = "refreshedAt"
    CREATED_AT = "createdAt"
    UPDATED_AT = "updatedAt"
    ATTEMPTS = "attempts"
    LAST_ERROR = "lastError"
    ACCESS_TOKEN = "accessToken"  # noqa: S105 - a field name, not a secret
    REFRESH_TOKEN = "refreshToken"  # noqa: S105 - a field name, not a secret
    PREVIOUS_REFRESH_TOKEN = "previousRefreshToken"  # noqa: S105 - a field name
    GRANT_GEN = "grantGen"
    APP_ENDPOINTS = "appEndpoints"
    ANSWER_LOST_AT = "answerLostAt"
    TENANT_ID = "tid"  # Microsoft: the verified tenant and object ids pin the identity
    OBJECT_ID = "oid"
    SUBJECT = "sub"  # others: the verified subject and issuer pin it
    ISSUER = "iss"
    EXPECTED_USER = "expectedUser"  # the user every consent of the account must be
    EMAIL = "email"  # the mailbox address an import gave (EmailEngine's `email`)
    DELEGATED_USER = "delegatedUser"  # Microsoft: the shared mailbox the user opens
    GRANT_DEADLINE = "grantDeadline"  # when the grant is known to die, epoch ms
    GRANT_DEADLINE_FROM = "grantDeadlineFrom"  # what told us (service/grant_deadline.py)
    GRANT_NOTICE = "grantNotice"  # the last authenticationExpiring sent: "<deadline>:<stage>"


FIELDS = frozenset(v for k, v in vars(F).items() if k.isupper())
SEALED_FIELDS = (F.ACCESS_TOKEN, F.REFRESH_TOKEN, F.PREVIOUS_REFRESH_TOKEN)


def sealed_aad(account_id: str, name: str) -> str:
    """The associated data an encrypted field of an account is bound to."""
    return f"acct:{account_id}:{name}"


def sealed_record(key: str, account_id: str) -> Record:
    """The account's hash as a sealed record (key rotation, backup)."""
    return bound_record(key, f"acct:{account_id}", SEALED_FIELDS)


@dataclass(frozen=True)
class Account:
    """One account as stored; tokens stay encrypted until asked for."""

    id: str
    app: str
    provider: str
    user: str
    status: Status
    name: str | None = None
    reason: str | None = None
    scopes: list[str] = field(default_factory=list)
    expires_at_ms: int | None = None
    lifetime_ms: int | None = None
    refreshed_at_ms: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None
    attempts: int = 0
    last_error: dict[str, Any] | None = None
    grant_gen: int = 0
    app_endpoints: str | None = None
    answer_lost_ms: int | None = None
    encrypted_access: str | None = field(default=None, repr=False)
    encrypted_refresh: str | None = field(default=None, repr=False)
    encrypted_previous_refresh: str | None = field(default=None, repr=False)
    email: str | None = None
    delegated_user: str | None = None
    grant_deadline_ms: int | None = None
    grant_deadline_from: str | None = None
    grant_notice: str | None = None

    def valid_for_ms(self, now_ms: int) -> int:
        """How long the stored access token stays valid (negative: expired or none)."""
        if self.encrypted_access is None or self.expires_at_ms is None:
            return -1
        return self.expires_at_ms - now_ms

    def public(self) -> dict[str, Any]:
        """The account as the API shows it: never a token."""
        return {
            "account": self.id,
            "name": self.name,
            "app": self.app,
            "provider": self.provider,
            "user": self.user,
            "status": self.status,
            "reason": self.reason,
            "scopes": self.scopes,
            "expires": iso(self.expires_at_ms) if self.expires_at_ms else None,
            "refreshedAt": iso(self.refreshed_at_ms) if self.refreshed_at_ms else None,
            "created": iso(self.created_ms) if self.created_ms else None,
            "updated": iso(self.updated_ms) if self.updated_ms else None,
            "attempts": self.attempts,
            "lastError": self.last_error,
        }


def _int(raw: dict[str, str], name: str) -> int | None:
    value = raw.get(name)
    return int(value) if value else None


def account_from_hash(raw: dict[str, str]) -> Account | None:
    """Build an Account from its Redis hash (None for an empty hash)."""
    if not raw or F.APP not in raw:
        return None
    return Account(
        id=raw[F.ID],
        app=raw[F.APP],
        provider=current_kind(raw.get(F.PROVIDER, "oidc")),
        user=raw.get(F.USER, ""),
        status=Status(raw.get(F.STATUS, Status.ACTIVE)),
        name=raw.get(F.NAME) or None,
        reason=raw.get(F.REASON) or None,
        scopes=orjson.loads(raw.get(F.SCOPES, "[]")),
        expires_at_ms=_int(raw, F.EXPIRES_AT),
        lifetime_ms=_int(raw, F.LIFETIME),
        refreshed_at_ms=_int(raw, F.REFRESHED_AT),
        created_ms=_int(raw, F.CREATED_AT),
        updated_ms=_int(raw, F.UPDATED_AT),
        attempts=_int(raw, F.ATTEMPTS) or 0,
        last_error=orjson.loads(raw[F.LAST_ERROR]) if raw.get(F.LAST_ERROR) else None,
        grant_gen=_int(raw, F.GRANT_GEN) or 0,
        app_endpoints=raw.get(F.APP_ENDPOINTS) or None,
        answer_lost_ms=_int(raw, F.ANSWER_LOST_AT),
        encrypted_access=raw.get(F.ACCESS_TOKEN),
        encrypted_refresh=raw.get(F.REFRESH_TOKEN),
        encrypted_previous_refresh=raw.get(F.PREVIOUS_REFRESH_TOKEN),
        email=raw.get(F.EMAIL) or None,
        delegated_user=raw.get(F.DELEGATED_USER) or None,
        grant_deadline_ms=_int(raw, F.GRANT_DEADLINE),
        grant_deadline_from=raw.get(F.GRANT_DEADLINE_FROM) or None,
        grant_notice=raw.get(F.GRANT_NOTICE) or None,
    )


@dataclass(frozen=True)
class AccountWrite:
    """What one writer sets on an account, in plaintext; None leaves a field as it is.

    `identity` carries extra fields a consent verified (field name -> value).
    `grant_deadline` is when the grant is known to die and what says so (None: unknown, or
    unchanged on a refresh; a new grant without one clears the old one).
    """

    app: str | None = None
    provider: str | None = None
    user: str | None = None
    name: str | None = None
    access_token: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    previous_refresh_token: str | None = field(default=None, repr=False)
    expires_at_ms: int | None = None
    lifetime_ms: int | None = None
    scopes: list[str] | None = None
    missing_scopes: list[str] | None = None
    refreshed_at_ms: int | None = None
    app_endpoints: str | None = None
    identity: dict[str, str] = field(default_factory=dict)
    grant_deadline: tuple[int, str] | None = None


def account_fields(
    cipher: Cipher, account_id: str, write: AccountWrite, now_ms: int
) -> dict[str, str]:
    """The hash fields of a write: tokens sealed to this account, everything as strings."""
    plain: dict[str, str | None] = {
        F.VERSION: SCHEMA_VERSION,
        F.ID: account_id,
        F.APP: write.app,
        F.PROVIDER: write.provider,
        F.USER: write.user,
        F.NAME: write.name or None,
        F.EXPIRES_AT: _str(write.expires_at_ms),
        F.LIFETIME: _str(write.lifetime_ms),
        F.REFRESHED_AT: _str(write.refreshed_at_ms),
        F.APP_ENDPOINTS: write.app_endpoints,
        F.UPDATED_AT: str(now_ms),
        F.SCOPES: orjson.dumps(write.scopes).decode() if write.scopes is not None else None,
        F.MISSING_SCOPES: (
            orjson.dumps(write.missing_scopes).decode()
            if write.missing_scopes is not None
            else None
        ),
    }
    if write.grant_deadline is not None:
        plain[F.GRANT_DEADLINE] = str(write.grant_deadline[0])
        plain[F.GRANT_DEADLINE_FROM] = write.grant_deadline[1]
    pairs = {name: value for name, value in plain.items() if value is not None}
    sealed = (
        (F.ACCESS_TOKEN, write.access_token),
        (F.REFRESH_TOKEN, write.refresh_token),
        (F.PREVIOUS_REFRESH_TOKEN, write.previous_refresh_token),
    )
    for name, secret in sealed:
        if secret is not None:
            pairs[name] = cipher.encrypt(secret, sealed_aad(account_id, name))
    unknown = set(write.identity) - FIELDS
    if unknown:
        raise ValueError(f"unknown account fields: {sorted(unknown)}")
    pairs.update(write.identity)
    return pairs


def endpoints_fingerprint(urls: tuple[str | None, ...]) -> str:
    """A short digest of an app's endpoint URLs, recorded on each account of the app."""
    return hashlib.sha256(orjson.dumps(urls)).hexdigest()[:16]


def flat(pairs: dict[str, str]) -> list[str]:
    """Field, value pairs as one list (the ARGV tail of the account scripts)."""
    return [item for pair in pairs.items() for item in pair]


def _str(value: int | None) -> str | None:
    return str(value) if value is not None else None
