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

    def account_pattern(self) -> str:
        """SCAN MATCH pattern of every partition's account hashes (confirm with account_id_of)."""
        return f"{self.prefix}:{{p*}}:acct:*"

    def account_id_of(self, key: str) -> str | None:
        """The account id of an account hash key found by SCAN; None for any other key."""
        head = f"{self.prefix}:{{p"
        part, sep, account = key.removeprefix(head).partition("}:acct:")
        if not key.startswith(head) or not sep or not part.isdigit() or not account:
            return None
        return account if self.account(account) == key else None

    def account_resources(self, account: str) -> str:
        """Hash of one account's per-resource access tokens (slot -> sealed entry)."""
        return f"{self._tag(self.partition_of(account))}:acctres:{account}"

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
        """Sorted set (score 0, ordered by id) of the partition's accounts: all, or one status.

        Only "all" and the statuses other than active have one (service/account_index.py):
        the active accounts are all those not in another status's index.
        """
        if status == "active":
            raise ValueError("active accounts have no index of their own (all minus the rest)")
        return f"{self._tag(partition)}:idx:{status}"

    def legacy_active_index(self, partition: int) -> str:
        """The index of active accounts that older versions kept; removed at start."""
        return f"{self._tag(partition)}:idx:active"

    def grant_deadlines(self, partition: int) -> str:
        """Sorted set of the partition's account ids scored by their grant's known deadline (ms)."""
        return f"{self._tag(partition)}:grantdl"

    def search(self, partition: int) -> str:
        """Sorted set (score 0) of the partition's search entries (service.account_search)."""
        return f"{self._tag(partition)}:idx:search"

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

    def scope_sets(self, partition: int) -> str:
        """Hash of scope-list reference -> JSON list, shared by the partition's accounts."""
        return f"{self._tag(partition)}:scopesets"

    def app_counts(self, partition: int) -> str:
        """Hash app id -> number of the partition's accounts using that app."""
        return f"{self._tag(partition)}:appcount"

    @property
    def global_events(self) -> str:
        """Stream of events not tied to one account (appCredentialsError)."""
        return f"{self._global}:events"

    @property
    def workers(self) -> str:
        """Hash of worker id -> its last heartbeat (epoch ms), for the dashboard."""
        return f"{self._global}:workers"

    def app_token(self, app: str) -> str:
        """Hash holding an app's own (client-credentials) token, sealed; lapses at its expiry."""
        return f"{self._global}:apptoken:{app}"

    def app_token_lock(self, app: str) -> str:
        """Lock held by the one process fetching an app's own token."""
        return f"{self._global}:apptoken-lock:{app}"

    def app_refused(self, app: str) -> str:
        """String: the provider's last refusal of an app's credentials, kept for a short while."""
        return f"{self._global}:apprefused:{app}"

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

    @property
    def admin(self) -> str:
        """Hash of the settings pages' operator account (the scrypt password hash only)."""
        return f"{self._global}:admin"

    def admin_session(self, sid: str) -> str:
        """One logged-in settings-page session (TTL = the session's lifetime)."""
        return f"{self._global}:admin:session:{sid}"

    def login_failures(self, kind: str, value: str) -> str:
        """Counter of failed logins per `kind` (ip, account) and value; TTL = the window."""
        return f"{self._global}:admin:fail:{kind}:{value}"

    def state(self, nonce: str) -> str:
        """Short-lived OAuth state of one consent flow."""
        return f"{self.prefix}:state:{nonce}"

    def link(self, link_id: str) -> str:
        """Short-lived record of one hosted consent link; deleted when the link is used."""
        return f"{self.prefix}:link:{link_id}"

    @property
    def invalidations(self) -> str:
        """Pub/sub channel carrying cache invalidations to every web process."""
        return f"{self.prefix}:invalidate"

    def outboxes(self) -> list[str]:
        """Hash-tagged prefixes that own an event stream: every partition, then the global one."""
        return [self._tag(p) for p in range(self.partitions)] + [self._global]

    @staticmethod
    def outbox_stream(outbox: str) -> str:
        """The event stream of an outbox (the same key as events(p) or global_events)."""
        return f"{outbox}:events"

    @staticmethod
    def webhook_retries(outbox: str) -> str:
        """Sorted set of events awaiting another delivery attempt, scored by due ms."""
        return f"{outbox}:wh:retry"

    @staticmethod
    def webhook_dead(outbox: str) -> str:
        """Sorted set of events whose retry budget ran out (dead letters), scored by time."""
        return f"{outbox}:wh:dead"

    @staticmethod
    def webhook_record(outbox: str, msg_id: str) -> str:
        """Hash of an event that failed at least once: payload, attempts, status."""
        return f"{outbox}:wh:rec:{msg_id}"

    @staticmethod
    def webhook_done(outbox: str) -> str:
        """List of the most recent deliveries (summaries), newest first."""
        return f"{outbox}:wh:done"

    def claim(self, partition: int, claim_id: str) -> str:
        """List of what one schedule claim took (account, due, ...); TTL = the lease."""
        return f"{self._tag(partition)}:claim:{claim_id}"

    def audit(self, partition: int) -> str:
        """Capped stream of one audit partition; each partition has a hash tag of its own."""
        return f"{self.prefix}:{{a{partition}}}:audit"

    @property
    def search_backfilled(self) -> str:
        """String set once every account stored before the search index existed is indexed."""
        return f"{self._global}:idx:search:backfilled"

    @property
    def search_compacted(self) -> str:
        """String set once the search entries that the id index makes redundant are removed."""
        return f"{self._global}:idx:search:compacted"


class CacheNames:
    """Names of per-process cache entries; the same names go out on the invalidation channel.

    A write publishes the name of what it changed (or "all"); every process forgets that
    entry. The Lua scripts that publish build the same names (see each script's header).
    """

    SETTINGS = "settings"  # every operator setting, as one entry
    ALL = "all"  # forget everything

    @staticmethod
    def account(account: str) -> str:
        """The token view of one account."""
        return f"acct:{account}"

    @staticmethod
    def app(app: str) -> str:
        """One OAuth2 app."""
        return f"app:{app}"

    @staticmethod
    def api_token(digest: str) -> str:
        """One API token, by the SHA-256 hex digest of the token."""
        return f"token:{digest}"
