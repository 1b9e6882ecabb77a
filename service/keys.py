"""Every Redis key name of tokenbroker, built in this one module."""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix; account keys share their partition's hash tag."""

    prefix: str = "tb"
    partitions: int = 1

    def partition_of(self, account: str) -> int:
        """Return the partition number of an account: crc32(id) mod P."""
        return zlib.crc32(account.encode()) % self.partitions

    def _tag(self, partition: int) -> str:
        return f"{self.prefix}:{{p{partition}}}"

    def account(self, account: str) -> str:
        """Hash holding one account's record."""
        return f"{self._tag(self.partition_of(account))}:acct:{account}"

    def lock(self, account: str) -> str:
        """Single-flight refresh lock of one account."""
        return f"{self._tag(self.partition_of(account))}:lock:{account}"

    def schedule(self, partition: int) -> str:
        """Sorted set of account ids scored by refresh-due epoch ms."""
        return f"{self._tag(partition)}:sched"

    def events(self, partition: int) -> str:
        """Stream of events caused by state changes of the partition's accounts."""
        return f"{self._tag(partition)}:events"

    def index(self, partition: int, status: str = "all") -> str:
        """Sorted set (score 0, ordered by id) of the partition's accounts, by status."""
        return f"{self._tag(partition)}:idx:{status}"

    @property
    def _global(self) -> str:
        # Global keys share one hash tag so that a script may touch several on a cluster.
        return f"{self.prefix}:{{g}}"

    @property
    def apps(self) -> str:
        """Set of OAuth2 app ids."""
        return f"{self._global}:apps"

    def app(self, app: str) -> str:
        """Hash holding one OAuth2 app."""
        return f"{self._global}:app:{app}"

    def app_counts(self, partition: int) -> str:
        """Hash app id -> number of the partition's accounts using that app."""
        return f"{self._tag(partition)}:appcount"

    @property
    def global_events(self) -> str:
        """Stream of events not tied to one account (appCredentialsError)."""
        return f"{self._global}:events"

    def rate(self, app: str) -> str:
        """Token bucket limiting refreshes per second of one app, shared by all workers."""
        return f"{self._global}:rate:{app}"

    @property
    def settings(self) -> str:
        """Hash of the operator's settings."""
        return f"{self._global}:settings"

    def api_token(self, digest: str) -> str:
        """Hash of one API token, found by the SHA-256 hex digest of the token."""
        return f"{self._global}:apitoken:{digest}"

    @property
    def api_token_ids(self) -> str:
        """Hash of API token id -> digest, for listing and revoking by id."""
        return f"{self._global}:apitokens"

    def state(self, nonce: str) -> str:
        """Short-lived OAuth state of one consent flow."""
        return f"{self.prefix}:state:{nonce}"

    @property
    def invalidations(self) -> str:
        """Pub/sub channel carrying cache invalidations to every web process."""
        return f"{self.prefix}:invalidate"
