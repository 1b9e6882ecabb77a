"""EmailEngine's view of an account: its states, its keys, beside tokenbroker's own fields."""

from __future__ import annotations

from typing import Any

from service import errors
from service.accounts import Account, Status

# EmailEngine's account states, in its order (its validation message lists them so).
EE_STATES = (
    "init",
    "unset",
    "connected",
    "connecting",
    "syncing",
    "authenticationError",
    "connectError",
    "disconnected",
    "paused",
)
# Our statuses as EmailEngine's states: an account whose token works is `connected`; one
# that needs consent again is `authenticationError`. No account of ours is in another state.
STATE_OF = {Status.ACTIVE: "connected", Status.REAUTH_REQUIRED: "authenticationError"}
STATUS_OF_STATE = {state: status.value for status, state in STATE_OF.items()}
MASK = "******"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+$"  # an import's `email` (also its OpenAPI pattern)


def ee_state(value: str) -> str:
    """Validate an EmailEngine `state` filter (`*` = every state)."""
    if value != "*" and value not in EE_STATES:
        raise errors.InvalidInput(
            f"state must be one of {', '.join(EE_STATES)}", details={"field": "state"}
        )
    return value


def oauth2_view(account: Account) -> dict[str, Any]:
    """The `oauth2` object EmailEngine shows: app id, user(s), tokens masked, expiry."""
    auth: dict[str, str] = {"user": account.user}
    if account.delegated_user:
        auth["delegatedUser"] = account.delegated_user
    view: dict[str, Any] = {"provider": account.app, "auth": auth}
    if account.encrypted_refresh:
        view["refreshToken"] = MASK
    if account.encrypted_access:
        view["accessToken"] = MASK
        if account.expires_at_ms:
            view["expires"] = account.public()["expires"]
    return view


def list_item(account: Account) -> dict[str, Any]:
    """One account of GET /v1/accounts: EmailEngine's keys, then ours as additions."""
    return {
        **account.public(),
        "email": account.email or account.user,
        "type": account.provider,
        "state": STATE_OF[account.status],
        "counters": {},
    }


def account_view(account: Account, base_scopes: str | None) -> dict[str, Any]:
    """GET /v1/account/{id}: EmailEngine's keys (IMAP ones as an API-only account has them).

    `base_scopes` is the app's scope preset (None: the app is gone).
    """
    return {
        **list_item(account),
        "logs": False,
        "notifyFrom": account.public()["created"],
        "connections": 0,
        "syncFrom": None,
        "path": "*",
        "imapIndexer": "full",
        "oauth2": oauth2_view(account),
        "smtpStatus": None,
        "imap": False,  # no IMAP or SMTP settings: tokenbroker keeps tokens only
        "smtp": False,
        "baseScopes": base_scopes,
    }
