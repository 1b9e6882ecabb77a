"""Who consented, from verified claims only, and whether that may (re)connect an account.

The rules, per provider type:

- mailRu: Mail.ru has no OpenID Connect. Its userinfo (asked with the fresh access token,
  server to server, as EmailEngine does) names the mailbox's `email`, which is the Mail.ru
  login itself, and a stable `id`: the user is that email, pinned by the id (`sub` when the
  endpoint speaks OpenID Connect) with Mail.ru's issuer.
- gmail, oidc: the user is the `email` of a claim set whose `email_verified` is true (JSON
  true or the string "true"); an email without it is not trusted, and the user is then the
  provider's stable `sub`. `preferred_username`, `upn` and `name` are never the user: no
  provider vouches for them. The identity is pinned by `sub` (and the `iss` it came from).
- outlook: the identity is the verified id_token's `tid` (tenant) and `oid` (the user's
  object id in it), which is pinned; the user shown is `preferred_username` (else `upn`,
  else the oid). Microsoft's `email` claim is whatever the tenant typed: never used.

An account keeps the pin of its first consent: a later consent of it must name the same
pin, and the account's `expectedUser` (kept from the consent that set it) must match the user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from service import errors
from service.account_record import F

MICROSOFT_PIN = (F.TENANT_ID, F.OBJECT_ID)
SUBJECT_PIN = (F.SUBJECT, F.ISSUER)
PIN_FIELDS = (*MICROSOFT_PIN, *SUBJECT_PIN)  # account hash fields that pin an identity
EXPECTED_USER_FIELD = F.EXPECTED_USER  # account hash field: the user every consent must be
GOOGLE_ISSUER = "https://accounts.google.com"  # its id_tokens also say it without https://
MAIL_RU_ISSUER = "https://oauth.mail.ru"  # no OpenID Connect: the pin's issuer is ours to name


@dataclass(frozen=True)
class Identity:
    """The user behind a grant, the claims that pin it, and where we learned them."""

    user: str
    pin: Mapping[str, str] = field(default_factory=dict)
    source: str = "id_token"  # "id_token" or "userinfo"


def verified_email(claims: Mapping[str, Any]) -> str | None:
    """The claim set's email when the same set says it is verified, else None."""
    email, flag = claims.get("email"), claims.get("email_verified")
    verified = flag is True or (isinstance(flag, str) and flag.lower() == "true")
    return email if verified and isinstance(email, str) and email else None


def microsoft_identity(claims: Mapping[str, Any]) -> Identity | None:
    """A Microsoft user from a verified id_token: pinned by tid/oid (None without them)."""
    tid, oid = _text(claims.get("tid")), _text(claims.get("oid"))
    if tid is None or oid is None:
        return None
    user = _text(claims.get("preferred_username")) or _text(claims.get("upn")) or oid
    return Identity(user, {"tid": tid, "oid": oid}, "id_token")


def subject_identity(
    id_claims: Mapping[str, Any] | None, info: Mapping[str, Any] | None, issuer: str | None
) -> Identity | None:
    """A google or oidc user: a verified email of either claim set, else `sub` (None: no sub).

    `id_claims` come from a verified id_token, `info` from userinfo (already checked to name
    the same `sub`); `issuer` is the app's, used when no id_token named its `iss`.
    """
    sets = [claims for claims in (id_claims, info) if claims is not None]
    sub = next((s for s in (_text(c.get("sub")) for c in sets) if s), None)
    if sub is None:
        return None
    iss = _text(id_claims.get("iss")) if id_claims is not None else None
    iss = GOOGLE_ISSUER if iss == GOOGLE_ISSUER.removeprefix("https://") else iss
    issued_by = iss or issuer
    pin = {"sub": sub, **({"iss": issued_by} if issued_by else {})}
    source = "id_token" if info is None else "userinfo"
    email = next((e for e in map(verified_email, sets) if e), None)
    return Identity(email or sub, pin, source)


def mailru_identity(info: Mapping[str, Any], issuer: str | None) -> Identity | None:
    """A Mail.ru user from its userinfo: the email, pinned by `id` (None: no email or id)."""
    email = _text(info.get("email"))
    subject = info.get("id", info.get("sub"))
    subject = str(subject) if isinstance(subject, (str, int)) and subject != "" else None
    if email is None or "@" not in email or subject is None:
        return None
    pin = {F.SUBJECT: subject, F.ISSUER: issuer or MAIL_RU_ISSUER}
    return Identity(email, pin, "userinfo")


def check_identity(
    identity: Identity, expected_user: str | None, stored: Mapping[str, str | None]
) -> None:
    """Refuse (UserMismatch) a user other than expected, or than the account is pinned to.

    `stored` holds the account's PIN_FIELDS and EXPECTED_USER_FIELD (None: not set); an
    account without a pin (new, or imported) accepts any identity.
    """
    for expected in (expected_user, stored.get(EXPECTED_USER_FIELD)):
        if expected and identity.user.casefold() != expected.casefold():
            raise errors.UserMismatch(
                f"you signed in as {identity.user}, but {expected} was expected"
            )
    pinned = {name: value for name in PIN_FIELDS if (value := stored.get(name))}
    if any(identity.pin.get(name) != value for name, value in pinned.items()):
        raise errors.UserMismatch(
            f"you signed in as {identity.user}, but this account belongs to another user; "
            "sign in as that user, or ask for the account to be deleted and connected again"
        )


def identity_fields(identity: Identity, expected_user: str | None) -> dict[str, str]:
    """The account hash fields a consent stores: the pin, and the expectedUser to keep."""
    fields = dict(identity.pin)
    if expected_user:
        fields[EXPECTED_USER_FIELD] = expected_user
    return fields


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
