"""A grant's known deadline: from the token response, or from what its app declares.

Some grants die on a date known in advance:
- a token response may carry `refresh_token_expires_in` (seconds), the refresh token's life;
- a Google app in publishing status "Testing" gets refresh tokens that expire 7 days after
  consent (the app declares `publishingStatus: testing`);
- a Microsoft app registered as a single-page app gets refresh tokens that live 24 hours
  from consent, rotation or not (the app declares `platform: spa`).
The earliest one known is recorded on the account (service/account_record.py) and indexed
by deadline, so that the worker warns ahead (service/grant_watch.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from service import errors

HOUR_MS = 3_600_000
FROM_RESPONSE = "refresh_token_expires_in"
PUBLISHING_STATUSES = ("testing", "production")
PLATFORMS = ("web", "spa")
# app field -> (its values, the provider types it applies to, value -> grant lifetime in ms)
DECLARATIONS: dict[str, tuple[tuple[str, ...], frozenset[str], dict[str, int]]] = {
    "publishingStatus": (
        PUBLISHING_STATUSES,
        frozenset({"gmail", "oidc"}),  # oidc: a Google app configured as a generic provider
        {"testing": 7 * 24 * HOUR_MS},
    ),
    "platform": (PLATFORMS, frozenset({"outlook"}), {"spa": 24 * HOUR_MS}),
}
Deadline = tuple[int, str]  # (epoch ms, what says so)


def check_declarations(kind: str, pairs: Mapping[str, str]) -> None:
    """Refuse a declaration of another provider type's apps, or an unknown value."""
    for name, (values, kinds, _) in DECLARATIONS.items():
        if name not in pairs:
            continue
        if kind not in kinds:
            raise errors.InvalidInput(
                f"{name} applies to {', '.join(sorted(kinds))} apps only", details={"field": name}
            )
        if pairs[name] not in values:
            raise errors.InvalidInput(
                f"{name} must be one of {', '.join(values)}", details={"field": name}
            )


def declared(kind: str, fields: Mapping[str, str], granted_ms: int) -> Deadline | None:
    """The deadline an app's declaration sets for a grant made at `granted_ms` (pure)."""
    for name, (_, kinds, lifetimes) in DECLARATIONS.items():
        value = fields.get(name)
        if kind in kinds and value in lifetimes:
            return granted_ms + lifetimes[value], f"{name}:{value}"
    return None


def at_grant(
    kind: str, fields: Mapping[str, str], refresh_expires_at_ms: int | None, now_ms: int
) -> Deadline | None:
    """A new grant's deadline (consent, import): the earliest of response and declaration."""
    found = [
        d for d in (_from_response(refresh_expires_at_ms), declared(kind, fields, now_ms)) if d
    ]
    return min(found) if found else None


def on_refresh(rotated: bool, refresh_expires_at_ms: int | None) -> Deadline | None:
    """A refresh moves the deadline only when it rotated and says when the new token dies.

    None leaves the recorded one: a declared lifetime runs from consent, and rotation does not
    extend it.
    """
    return _from_response(refresh_expires_at_ms) if rotated else None


def _from_response(refresh_expires_at_ms: int | None) -> Deadline | None:
    return (refresh_expires_at_ms, FROM_RESPONSE) if refresh_expires_at_ms is not None else None


__all__ = ["DECLARATIONS", "Deadline", "at_grant", "check_declarations", "declared", "on_refresh"]
