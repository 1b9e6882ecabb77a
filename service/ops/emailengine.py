"""`tokenbroker import --from-emailengine REDIS_URL`: apps, accounts, API tokens and settings.

EmailEngine's Redis is only read. Everything goes in through our own stores (AppStore,
AccountStore.save with the one account-record builder, ApiTokenStore, SettingsStore), ids
kept. No provider is called: imported accounts are scheduled as usual and the worker
refreshes them afterwards. Running it again changes nothing: an app, account or token
that is already here is kept as it is (never overwritten, never revoked).
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis.asyncio import Redis

from service import errors
from service.account_record import AccountWrite
from service.accounts import AccountStore
from service.apitokens import ApiTokenStore
from service.apps import AppStore
from service.clock import Clock, iso
from service.config import Config
from service.crypto.cipher import Cipher
from service.grant_deadline import at_grant
from service.ops.emailengine_format import EeData, EeReader
from service.ops.emailengine_plan import (
    Plan,
    plan_account,
    plan_apps,
    plan_settings,
    plan_token,
)
from service.settings import SettingsStore, check_value
from service.store.keys import Keys
from service.store.scripts import Scripts
from service.timing import next_refresh_ms
from service.webhooks.headers import WebhookHeaders
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret

SECRET_ENV = "EENGINE_SECRET"  # noqa: S105 - the variable's name


async def _quiet(name: str) -> bool:
    """No webhook event for imported accounts: they were added long ago, in EmailEngine."""
    return False


def make_plan(data: EeData) -> Plan:
    """The whole import plan of what EmailEngine holds."""
    plan = Plan()
    plan_apps(plan, data.apps)
    for account in data.accounts:
        plan_account(plan, account, set(data.apps))
    for token in data.tokens:
        plan_token(plan, token.id, token.record)
    plan_settings(plan, data.settings)
    return plan


@dataclass
class Outcome:
    """What a run did: (kind, result) -> count, and what it left out while writing."""

    counts: Counter[str] = field(default_factory=Counter)
    refused: list[dict[str, str]] = field(default_factory=list)


class EmailEngineImport:
    """Writes a Plan through our stores."""

    def __init__(
        self, config: Config, keys: Keys, redis: Redis, cipher: Cipher, clock: Clock
    ) -> None:
        scripts = Scripts(redis)
        self.config, self.clock = config, clock
        self.apps = AppStore(redis, keys, scripts, cipher, config)
        self.accounts = AccountStore(redis, keys, scripts, cipher, wants=_quiet)
        self.tokens = ApiTokenStore(redis, keys)
        self.settings = SettingsStore(redis, keys)
        self.headers = WebhookHeaders(redis, keys, cipher)
        self.service_secret = ServiceSecret(redis, keys, cipher)

    async def apply(self, plan: Plan) -> Outcome:
        """Import apps, then accounts, tokens and settings."""
        out = Outcome()
        for app_id, body in plan.apps.items():
            await self._app(app_id, body, out)
        for account in plan.accounts:
            await self._account(account, out)
        for token in plan.tokens:
            written = await self.tokens.import_raw(
                token.digest, token.scopes, token.account, token.description, token.created_ms
            )
            out.counts["token " + ("imported" if written else "unchanged")] += 1
        await self._settings(plan.settings, out)
        await self._service_secret(plan.service_secret, out)
        return out

    async def _app(self, app_id: str, body: dict[str, Any], out: Outcome) -> None:
        existing = await self.apps.get(app_id)
        if existing is not None and existing.provider != body["provider"]:
            reason = f"an app with this id and provider {existing.provider!r} is here already"
            out.refused.append({"what": "app", "id": app_id, "reason": reason})
            return
        if existing is not None:
            out.counts["app kept"] += 1
            return
        try:
            await self.apps.create(body, iso(self.clock.now_ms()))
        except errors.ApiError as exc:
            out.refused.append({"what": "app", "id": app_id, "reason": str(exc)})
            return
        out.counts["app imported"] += 1

    async def _account(self, plan: Any, out: Outcome) -> None:
        existing = await self.accounts.get(plan.id)
        if existing is not None and existing.app != plan.app:
            reason = f"an account with this id is here already, on app {existing.app!r}"
            out.refused.append({"what": "account", "id": plan.id, "reason": reason})
            return
        if existing is not None:
            out.counts["account kept"] += 1
            return
        app = await self.apps.get(plan.app)
        if app is None:
            out.refused.append({"what": "account", "id": plan.id, "reason": "its app is absent"})
            return
        now = self.clock.now_ms()
        write = AccountWrite(
            app=app.id,
            provider=app.provider,
            user=plan.user,
            name=plan.name,
            access_token=plan.access_token,
            refresh_token=plan.refresh_token,
            expires_at_ms=plan.expires_at_ms,
            scopes=plan.scopes if plan.scopes is not None else app.scopes,
            app_endpoints=app.endpoints_fingerprint,
            grant_deadline=at_grant(app.provider, app.fields, None, now),
        )
        expires = plan.expires_at_ms if plan.access_token else None
        due = next_refresh_ms(self.config, now, expires, None) if expires is not None else now
        data = {"user": plan.user, "provider": app.provider}
        try:
            await self.accounts.save(plan.id, write, due, now, data)
        except errors.ApiError as exc:
            out.refused.append({"what": "account", "id": plan.id, "reason": str(exc)})
            return
        out.counts["account imported"] += 1

    async def _settings(self, wanted: dict[str, Any], out: Outcome) -> None:
        current = await self.settings.all()
        current["webhookHeaders"] = await self.headers.values()
        changed: dict[str, Any] = {}
        for name, value in wanted.items():
            try:
                checked = check_value(name, value, allow_private=self.config.allow_private_urls)
            except errors.ApiError as exc:
                out.refused.append({"what": "setting", "id": name, "reason": str(exc)})
                continue
            if checked != current.get(name):
                changed[name] = checked
            out.counts["setting " + ("imported" if name in changed else "unchanged")] += 1
        await self.settings.update(changed, self.headers)

    async def _service_secret(self, secret: str | None, out: Outcome) -> None:
        """EmailEngine's serviceSecret, sealed, unless one is set here already (kept)."""
        if secret is None:
            return
        store = self.service_secret
        added = await store.redis.hsetnx(store.keys.settings, SERVICE_SECRET, store.seal(secret))
        out.counts["setting " + ("imported" if added else "unchanged")] += 1


def report(plan: Plan, data: EeData, outcome: Outcome | None) -> dict[str, Any]:
    """The run's report: what is (or would be) imported, and what is not, with reasons."""
    body: dict[str, Any] = {
        "dryRun": outcome is None,
        "apps": sorted(plan.apps),
        "accounts": [a.id for a in plan.accounts],
        "tokens": [t.digest[:16] for t in plan.tokens],
        "settings": sorted(plan.settings),
        "strays": data.strays,
        "notImported": [vars(s) for s in plan.skipped],
    }
    if outcome is not None:
        body["result"] = dict(sorted(outcome.counts.items()))
        body["refused"] = outcome.refused
    return body


def print_report(body: dict[str, Any], as_json: bool) -> None:
    """Print the report as one JSON object or as readable lines."""
    if as_json:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return
    verb = "would import" if body["dryRun"] else "import"
    for what in ("apps", "accounts", "tokens", "settings"):
        print(f"{verb} {len(body[what])} {what}: {', '.join(body[what]) or '-'}")
    for stray in body["strays"]:
        print(f"stray record iad:{stray} is not an account (no account field)")
    for skip in body["notImported"]:
        print(f"not imported: {skip['what']} {skip['id']}: {skip['reason']}")
    for refused in body.get("refused", []):
        print(f"refused: {refused['what']} {refused['id']}: {refused['reason']}")
    for name, count in body.get("result", {}).items():
        print(f"{name}: {count}")


def source_secret() -> str:
    """EENGINE_SECRET from the environment, else asked for on the terminal."""
    secret = os.environ.get(SECRET_ENV)
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise ValueError(f"set {SECRET_ENV} (EmailEngine's encryption secret) or run on a terminal")
    return getpass.getpass(f"{SECRET_ENV}: ")


def shown_url(url: str) -> str:
    """The Redis URL without any password, for messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def run_import(
    args: argparse.Namespace, config: Config, keys: Keys, redis: Redis, clock: Clock
) -> int:
    """Read EmailEngine's Redis, print the plan, and unless --dry-run import it."""
    secret = source_secret()
    source = Redis.from_url(args.from_emailengine, decode_responses=False)
    try:
        data = await EeReader(source, secret, args.prefix).read()
    finally:
        await source.aclose()
    plan = make_plan(data)
    outcome = None
    if not args.dry_run:
        cipher = Cipher(config.secret_key, config.old_secret_keys)
        outcome = await EmailEngineImport(config, keys, redis, cipher, clock).apply(plan)
    print_report(report(plan, data, outcome), args.json)
    print(f"read from EmailEngine at {shown_url(args.from_emailengine)}", file=sys.stderr)
    return 1 if outcome is not None and outcome.refused else 0
