"""Deleting an account: every key of it, then its refresh token revoked at the provider."""

from __future__ import annotations

import structlog

from service.accounts import Account, AccountStore
from service.apps import AppStore
from service.clock import Clock
from service.credential_retry import with_credentials
from service.oauth.client import OAuthClient, Revocation

log = structlog.get_logger("accounts")


class AccountRemoval:
    """Deletes accounts for the API, the settings pages and the CLI alike."""

    def __init__(
        self, accounts: AccountStore, apps: AppStore, oauth: OAuthClient, clock: Clock
    ) -> None:
        self.accounts, self.apps, self.oauth, self.clock = accounts, apps, oauth, clock

    async def delete(self, account: Account, revoke: bool = True) -> tuple[bool, Revocation | None]:
        """Delete the account, then (when `revoke`) revoke its refresh token (best effort).

        The revocation is tried once with a short timeout; its failure never undoes the delete.
        """
        accounts = self.accounts
        refresh_token = accounts.refresh_token(account) if account.encrypted_refresh else None
        deleted = await accounts.delete(account, self.clock.now_ms())
        if not deleted or refresh_token is None or not revoke:
            return deleted, None
        app = await self.apps.get(account.app)
        if app is None:
            return deleted, Revocation(False, "appDeleted", "the account's app no longer exists")
        outcome = await with_credentials(
            self.apps, app, lambda credential: self.oauth.revoke(app, credential, refresh_token)
        )
        log.info(
            "account_revoked" if outcome.revoked else "account_revoke_failed",
            account=account.id,
            reason=outcome.reason,
        )
        return deleted, outcome
