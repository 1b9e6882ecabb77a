"""Deleting an account (then revoking its refresh token), or an app with its accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog
from redis.asyncio import Redis

from service.account_record import F
from service.accounts import Account, AccountStore
from service.apps import AppStore
from service.clock import Clock
from service.credential_retry import with_credentials
from service.oauth.client import OAuthClient, Revocation

log = structlog.get_logger("accounts")
SCAN_BATCH = 500
SWEEPS = 3  # an account saved by a consent that began before the app went is caught next


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

    async def delete_app(self, app_id: str) -> int:
        """Delete the app, then every account of it; how many accounts were deleted.

        The app goes first, so no new consent or import can add an account to it; then the
        partitions' account indexes are scanned (stopping once the app's count is reached)
        and each account deleted as DELETE /v1/account does, without revoking: the app's
        credentials are gone with it. Raises AppNotFound when there is no such app.
        """
        await self.apps.delete(app_id, with_accounts=True)
        removed = 0
        for _ in range(SWEEPS):
            left = await self.apps.account_count(app_id)
            if left <= 0:
                break
            for account_id in await self._ids_of(app_id, left):
                account = await self.accounts.get(account_id)
                if account is not None and account.app == app_id:
                    removed += int((await self.delete(account, revoke=False))[0])
        log.info("app_deleted", app=app_id, accounts=removed)
        return removed

    async def _ids_of(self, app_id: str, wanted: int) -> list[str]:
        """Up to `wanted` ids of the app's accounts, scanning each partition's index."""
        redis: Redis = self.accounts.redis
        keys = self.accounts.keys
        found: list[str] = []
        for part in range(keys.partitions):
            async for batch in _batches(redis, keys.index(part)):
                async with redis.pipeline(transaction=False) as pipe:
                    for account_id in batch:
                        pipe.hget(keys.account(account_id), F.APP)
                    apps = await pipe.execute()
                found += [i for i, a in zip(batch, apps, strict=True) if _text(a) == app_id]
                if len(found) >= wanted:
                    return found
        return found


async def _batches(redis: Redis, key: str) -> AsyncIterator[list[str]]:
    cursor = 0
    while True:
        cursor, rows = await redis.zscan(key, cursor, count=SCAN_BATCH)
        if rows:
            yield [_text(member) for member, _ in rows]
        if cursor == 0:
            return


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value or "")
