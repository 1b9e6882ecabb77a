"""An account's per-resource access tokens: sealed entries beside the account, fenced writes.

One hash per account (`Keys.account_resources`, the account's hash tag) maps a slot (one per
set of scopes asked, service.resources.Resource.slot) to a JSON entry: the access token sealed
to the account and slot, its expiry, its scopes and the grant generation it was obtained
under. An entry of another generation (a restored or re-consented grant) is not served; the
hash goes with the account (account_delete) and with its grant (account_save), and lapses
once its last token has expired.

Entries are caches of what the provider would mint again: one sealed with a key that is no
longer known reads as absent (key rotation re-seals the account records, not these).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from redis.asyncio import Redis

from service.account_outcomes import Stored, stored
from service.account_record import Account, AccountWrite, account_fields, flat, sealed_aad
from service.crypto.cipher import Cipher, DecryptError
from service.store.keys import Keys
from service.store.replicas import ReplicaWait
from service.store.scripts import Scripts


@dataclass(frozen=True)
class ResourceToken:
    """One per-resource access token, in plaintext."""

    access_token: str = field(repr=False)
    expires_at_ms: int
    scopes: list[str]


def _aad(account_id: str, slot: str) -> str:
    return sealed_aad(account_id, f"res:{slot}")


class ResourceTokens:
    """Reads an account's per-resource tokens and stores new ones under the refresh fence."""

    def __init__(self, redis: Redis, keys: Keys, scripts: Scripts, cipher: Cipher) -> None:
        self.redis, self.keys, self.scripts, self.cipher = redis, keys, scripts, cipher

    async def get(self, account: Account, slot: str) -> ResourceToken | None:
        """The slot's token of the account's current grant, or None."""
        raw = await self.redis.hget(self.keys.account_resources(account.id), slot)
        if raw is None:
            return None
        entry = orjson.loads(raw)
        if entry.get("g") != account.grant_gen:
            return None
        try:
            token = self.cipher.decrypt(str(entry["t"]), _aad(account.id, slot))
        except DecryptError:
            return None
        return ResourceToken(token, int(entry["e"]), list(entry.get("s", [])))

    async def store(
        self,
        account: Account,
        lock_value: str,
        slot: str,
        token: ResourceToken,
        rotated: tuple[str, str] | None,
        now_ms: int,
        wait: ReplicaWait,
    ) -> Stored:
        """Store the slot's token (and `rotated` = (new, sent) refresh tokens), release the lock.

        Returns OK, LATE (written though the lock had passed on), GONE or SUPERSEDED (the
        grant changed since `account` was read: nothing written).
        """
        entry = {
            "t": self.cipher.encrypt(token.access_token, _aad(account.id, slot)),
            "e": token.expires_at_ms,
            "s": token.scopes,
            "g": account.grant_gen,
        }
        pairs: dict[str, str] = {}
        if rotated is not None:
            new, sent = rotated
            write = AccountWrite(refresh_token=new, previous_refresh_token=sent)
            pairs = account_fields(self.cipher, account.id, write, now_ms)
        keys = [
            self.keys.account(account.id),
            self.keys.lock(account.id),
            self.keys.account_resources(account.id),
        ]
        args = [
            lock_value,
            account.grant_gen,
            slot,
            orjson.dumps(entry).decode(),
            token.expires_at_ms,
            *flat(pairs),
        ]
        if rotated is not None:  # a failover must keep the rotated refresh token
            return stored((await wait.run("account_store_resource", keys, args))[0])
        return stored(await self.scripts.run("account_store_resource", keys, args))
