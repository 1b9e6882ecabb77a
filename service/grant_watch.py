"""Warnings before a grant dies: authenticationExpiring once per stage, with a re-consent link.

Accounts whose grant has a known deadline (service/grant_deadline.py) sit in a sorted set per
partition scored by it (Keys.grant_deadlines), kept by the scripts that write the record;
the worker reads only the part of it that falls within the warning window.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import structlog

from service.account_record import Account, F, Status
from service.accounts import AccountStore
from service.clock import Clock, iso
from service.config import Config
from service.consent import ConsentRequest
from service.limits import LINK_TTL_S
from service.links import HostedLinks
from service.webhooks.events import event_json

log = structlog.get_logger("grant_watch")
Stage = Literal["ok", "warning", "final"]
RANK: dict[Stage, int] = {"ok": 0, "warning": 1, "final": 2}
HOUR_MS = 3_600_000
WEEK_MS = 7 * 24 * HOUR_MS
LISTED = 100  # grants listed on a page (the soonest)
LINK_GRACE_S = 86_400  # the event's re-consent link outlives the deadline by a day
EVENT = "authenticationExpiring"


def stage_of(left_ms: int, warning_hours: int, final_hours: int) -> Stage:
    """How close a live grant is to its deadline (pure; a passed deadline is not warned of)."""
    if 0 < left_ms <= final_hours * HOUR_MS:
        return "final"
    if 0 < left_ms <= warning_hours * HOUR_MS:
        return "warning"
    return "ok"


@dataclass(frozen=True)
class Expiring:
    """One grant's coming death as of a moment."""

    account: Account
    deadline_ms: int
    stage: Stage
    left_ms: int

    @property
    def notice(self) -> str:
        """The value recorded once this stage's notice went out."""
        return f"{self.deadline_ms}:{self.stage}"

    @property
    def hours_left(self) -> int:
        """Whole hours left."""
        return max(0, self.left_ms // HOUR_MS)


def due_notice(account: Account, stage: Stage) -> bool:
    """Whether this stage's notice has not gone out yet for the account's deadline."""
    if stage == "ok":
        return False
    sent_deadline, _, sent_stage = (account.grant_notice or "").partition(":")
    if sent_deadline != str(account.grant_deadline_ms):
        return True
    ranks: dict[str, int] = {str(name): rank for name, rank in RANK.items()}
    return ranks.get(sent_stage, 0) < RANK[stage]


class GrantWatch:
    """Finds grants that die soon; sends each warning once per stage across workers."""

    def __init__(
        self, accounts: AccountStore, links: HostedLinks, config: Config, clock: Clock
    ) -> None:
        self.accounts, self.links, self.config, self.clock = accounts, links, config, clock

    async def _ids(self, now: int, within_ms: int, limit: int | None) -> list[str]:
        """Ids in the index whose deadline is in (now, now + within_ms], per partition."""
        keys = self.accounts.keys
        start, num = (0, limit) if limit is not None else (None, None)
        async with self.accounts.redis.pipeline(transaction=False) as pipe:
            for part in range(keys.partitions):
                key = keys.grant_deadlines(part)
                pipe.zrangebyscore(key, f"({now}", now + within_ms, start=start, num=num)
            found = await pipe.execute()
        return [str(account) for ids in found for account in ids]

    async def dying(self, within_ms: int, limit: int | None = None) -> list[Account]:
        """Active accounts whose grant dies within `within_ms` from now, soonest first.

        With `limit`, at most that many (the soonest of each partition, then merged).
        """
        now = self.clock.now_ms()
        accounts = await self.accounts.load(await self._ids(now, within_ms, limit))
        alive = [
            a
            for a in accounts
            if a.status == Status.ACTIVE
            and a.grant_deadline_ms is not None
            and now < a.grant_deadline_ms <= now + within_ms
        ]
        return sorted(alive, key=lambda a: (a.grant_deadline_ms or 0, a.id))[:limit]

    async def count(self, within_ms: int) -> int:
        """How many active accounts' grants die within `within_ms` (reads only their status)."""
        ids = await self._ids(self.clock.now_ms(), within_ms, None)
        async with self.accounts.redis.pipeline(transaction=False) as pipe:
            for account in ids:
                pipe.hget(self.accounts.keys.account(account), F.STATUS)
            statuses = await pipe.execute()
        return sum(1 for status in statuses if status == Status.ACTIVE)

    async def check(self) -> list[Expiring]:
        """Warn of every grant within the warning window now; return the notices recorded."""
        now = self.clock.now_ms()
        window = self.config.grant_warning_hours * HOUR_MS
        sent = []
        for account in await self.dying(window):
            deadline = account.grant_deadline_ms or 0
            stage = stage_of(
                deadline - now,
                self.config.grant_warning_hours,
                self.config.grant_final_warning_hours,
            )
            expiring = Expiring(account, deadline, stage, deadline - now)
            if due_notice(account, stage) and await self._record(expiring, now):
                sent.append(expiring)
        return sent

    async def _record(self, expiring: Expiring, now: int) -> bool:
        account = expiring.account
        event = ""
        if await self.accounts.wants(EVENT):
            data = await self._event_data(expiring, now)
            event = event_json(EVENT, account.id, account.app, data, now)
        part = self.accounts.keys.partition_of(account.id)
        keys = [self.accounts.keys.account(account.id), self.accounts.keys.events(part)]
        args = [
            expiring.deadline_ms,
            account.grant_gen,
            expiring.notice,
            RANK[expiring.stage],
            event,
        ]
        recorded = int(await self.accounts.scripts.run("account_grant_notice", keys, args)) == 1
        if recorded:
            log.warning(
                EVENT,
                account=account.id,
                stage=expiring.stage,
                deadline=iso(expiring.deadline_ms),
                source=account.grant_deadline_from,
            )
        return recorded

    async def _event_data(self, expiring: Expiring, now: int) -> dict[str, Any]:
        """The event's data: the deadline, and a hosted link that connects the account anew."""
        account = expiring.account
        request = ConsentRequest(
            account=account.id, app=account.app, expected_user=account.user or None
        )
        # valid past the deadline too: a user who is late can still connect the account anew
        ttl_s = min(expiring.left_ms // 1000 + LINK_GRACE_S, LINK_TTL_S.high)
        return {
            "user": account.user,
            "provider": account.provider,
            "deadline": iso(expiring.deadline_ms),
            "hoursLeft": expiring.hours_left,
            "stage": expiring.stage,
            "source": account.grant_deadline_from,
            "url": await self.links.create(request, ttl_s),
            "urlExpires": iso(now + ttl_s * 1000),
        }


__all__ = ["LISTED", "WEEK_MS", "Expiring", "GrantWatch", "due_notice", "stage_of"]
