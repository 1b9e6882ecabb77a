"""Expiry of apps' credentials: notices some days ahead, an app error when one dies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import orjson
import structlog

from service import app_credentials
from service.apps import App, AppStore
from service.clock import Clock, iso
from service.config import Config
from service.crypto.credentials import SLOTS, Slot
from service.store.keys import CacheNames
from service.webhooks.events import wanted_event

log = structlog.get_logger("credential_watch")
Stage = Literal["ok", "warning", "final", "expired"]
RANK: dict[Stage, int] = {"ok": 0, "warning": 1, "final": 2, "expired": 3}
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Expiry:
    """One credential's expiry as of a moment: which app and slot, when, and how close."""

    app: str
    slot: Slot
    kind: str  # secret or certificate
    expires_ms: int
    stage: Stage
    left_ms: int

    @property
    def days_left(self) -> int:
        """Whole days left (0 on the last day and after)."""
        return max(0, self.left_ms // DAY_MS)

    @property
    def notice(self) -> str:
        """The value recorded once this stage's notice went out."""
        return f"{self.expires_ms}:{self.stage}"


def stage_of(left_ms: int, warning_days: int, final_days: int) -> Stage:
    """How close a credential is to its death (pure)."""
    if left_ms <= 0:
        return "expired"
    if left_ms <= final_days * DAY_MS:
        return "final"
    if left_ms <= warning_days * DAY_MS:
        return "warning"
    return "ok"


def expiries(app: App, now_ms: int, config: Config) -> list[Expiry]:
    """Every credential of the app with a known expiry (pure)."""
    found = []
    for slot in SLOTS:
        expires = app_credentials.expiry_ms(app, slot)
        if expires is None:
            continue
        left = expires - now_ms
        stage = stage_of(left, config.credential_warning_days, config.credential_final_warning_days)
        kind = app_credentials.kind(app, slot)
        found.append(Expiry(app.id, slot, kind, expires, stage, left))
    return found


def due_notice(app: App, expiry: Expiry) -> bool:
    """Whether this stage's notice has not gone out yet for this expiry date."""
    if expiry.stage == "ok":
        return False
    sent = app.fields.get(app_credentials.FIELDS[expiry.slot].notice, "")
    sent_expires, _, sent_stage = sent.partition(":")
    if sent_expires != str(expiry.expires_ms):
        return True
    ranks: dict[str, int] = {str(stage): rank for stage, rank in RANK.items()}
    return ranks.get(sent_stage, 0) < RANK[expiry.stage]


class CredentialWatch:
    """Sends each expiry notice once per stage, across any number of workers."""

    def __init__(self, apps: AppStore, config: Config, clock: Clock) -> None:
        self.apps, self.config, self.clock = apps, config, clock

    async def check(self) -> list[Expiry]:
        """Look at every app's credentials now; return the notices this call recorded."""
        now = self.clock.now_ms()
        sent = []
        for app in await self.apps.all():
            found = expiries(app, now, self.config)
            for expiry in found:
                if due_notice(app, expiry) and await self._record(app, expiry, found, now):
                    sent.append(expiry)
        return sent

    async def _record(self, app: App, expiry: Expiry, found: list[Expiry], now: int) -> bool:
        other_slot = next(s for s in SLOTS if s != expiry.slot)
        other = next((e for e in found if e.slot == other_slot), None)
        spare = app_credentials.has_slot(app, other_slot) and (
            other is None or other.stage != "expired"
        )
        data: dict[str, Any] = {
            "provider": app.provider,
            "clientId": app.client_id,
            "credential": expiry.slot,
            "type": expiry.kind,
            "expires": iso(expiry.expires_ms),
        }
        flag = ""
        if expiry.stage == "expired":
            name = "appCredentialsError"
            error = {"error": "credential_expired", "reason": "appCredentials"}
            data.update(error)
            if not spare:
                flag = orjson.dumps({**error, "credential": expiry.slot, "time": iso(now)}).decode()
        else:
            name = "appCredentialsExpiring"
            data.update({"daysLeft": expiry.days_left, "next": spare})
        event = await wanted_event(self.apps.wants, name, None, app.id, data, now)
        field = app_credentials.FIELDS[expiry.slot].notice
        before = app.fields.get(field, "")
        keys = [self.apps.keys.app(app.id), self.apps.keys.global_events]
        invalidation = [self.apps.keys.invalidations, CacheNames.app(app.id)]
        args = [field, before, expiry.notice, event, flag, *invalidation]
        recorded = int(await self.apps.scripts.run("app_credential_notice", keys, args)) == 1
        if recorded:
            self.apps.notify(CacheNames.app(app.id))
            log.warning(name, app=app.id, credential=expiry.slot, days_left=expiry.days_left)
        return recorded


__all__ = ["CredentialWatch", "Expiry", "due_notice", "expiries", "stage_of"]
