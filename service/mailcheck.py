"""The mailbox check: an account's token tried on IMAP, SMTP and the mail API, each classified.

The token is the one the token endpoint would serve (refreshed first when it expires too
soon). Each protocol answers `ok`, `skipped` (its scope is not granted, or no server is known
for the provider type) or `failed` with a code; every answer but `ok` has a remediation line.
The token never appears in the answer or a log line: the servers' words are scrubbed of it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from service.apps import App
from service.core import Core
from service.limits import MIN_VALIDITY_S
from service.mail.imap import imap_login
from service.mail.login import Attempt
from service.mail.smtp import smtp_login
from service.mail.wire import Kind, Outcome, Server, scrub
from service.mail_servers import Check, checks
from service.outbound.session import AddressGuard, read_capped

log = structlog.get_logger("mailcheck")
TIMEOUT_S = 10.0  # each protocol's whole exchange, connection included
MISSING_SCOPE, NOT_CONFIGURED = "missingScope", "notConfigured"
REMEDIATION = {
    MISSING_SCOPE: "The grant lacks a scope this check needs ({scopes}): add it to the app's "
    "scopes and have the user consent again.",
    NOT_CONFIGURED: "Nothing to check is known for this provider type: set the app's "
    "{setting} to check it.",
    Kind.TOKEN_REFUSED: "The server refused the token: refresh the account "
    "(POST /v1/account/{{account}}/refresh) or have the user consent again; check that the "
    "account's user is the mailbox the grant belongs to.",
    Kind.IMAP_DISABLED: "IMAP is off for this mailbox: turn it on (Gmail: Settings, Forwarding "
    "and POP/IMAP; Exchange Online: Set-CASMailbox <mailbox> -ImapEnabled $true).",
    Kind.SMTP_AUTH_DISABLED: "SMTP AUTH is disabled for the tenant or mailbox: enable it "
    "(Exchange Online: Set-CASMailbox <mailbox> -SmtpClientAuthenticationDisabled $false, "
    "or Set-TransportConfig -SmtpClientAuthenticationDisabled $false for the tenant).",
    Kind.UNREACHABLE: "The server could not be reached: check the host, port and TLS mode "
    "(the app's {proto}Host/{proto}Port/{proto}Tls) and the network path to it.",
    Kind.TIMEOUT: "The server did not answer within {timeout:g} s: check the host and port "
    "and any firewall between tokenbroker and the server.",
    Kind.PROTOCOL: "The server answered unexpectedly: check that the host and port are its "
    "{proto} service and that the TLS mode matches.",
    Kind.API_FORBIDDEN: "The mail API refused this token's permissions: grant the API's mail "
    "scope, or enable the API for the project or tenant.",
}


@dataclass(frozen=True)
class Result:
    """One protocol's answer."""

    status: str  # ok, skipped, failed
    where: dict[str, object] | str | None
    code: str | None = None
    message: str = ""
    elapsed_ms: int | None = None

    def view(self, proto: str, check: Check, account: str, timeout_s: float) -> dict[str, Any]:
        """The answer's entry for `proto`, with its remediation line when not ok."""
        body: dict[str, Any] = {"status": self.status}
        if isinstance(self.where, dict):
            body["server"] = self.where
        elif self.where is not None:
            body["url"] = self.where
        if self.code is not None:
            body["code"] = self.code
            line = REMEDIATION.get(self.code, REMEDIATION[Kind.PROTOCOL])
            setting = "mailApiUrl" if proto == "api" else f"{proto}Host (and port and TLS mode)"
            body["remediation"] = line.format(
                proto=proto, scopes=" or ".join(check.scopes), timeout=timeout_s, setting=setting
            ).replace("{account}", account)
        if self.message:
            body["message"] = self.message
        if self.elapsed_ms is not None:
            body["elapsedMs"] = self.elapsed_ms
        return body


class MailCheck:
    """Runs the check of one account with what the web process holds."""

    def __init__(self, core: Core, timeout_s: float = TIMEOUT_S) -> None:
        self.core, self.timeout_s = core, timeout_s
        guard = None if core.config.allow_private_urls else AddressGuard()
        self.attempt = Attempt(timeout_s, guard)

    async def check(self, account_id: str) -> dict[str, Any]:
        """{account, user, app, provider, ok, imap, smtp, api}: `ok` when nothing failed."""
        fresh = await self.core.token_service.fresh_token(account_id, MIN_VALIDITY_S.default * 1000)
        view = fresh.view
        app = await self.core.apps.require(view.app)
        account = await self.core.accounts.require(account_id)
        user = account.delegated_user or view.user  # a shared mailbox logs in by its address
        plan = checks(app)
        token = view.access_token or ""
        names = list(plan)
        results = await asyncio.gather(
            *(self._one(name, plan[name], app, user, view.scopes, token) for name in names)
        )
        body: dict[str, Any] = {
            "account": account_id,
            "user": user,
            "app": app.id,
            "provider": app.provider,
            "ok": all(result.status != "failed" for result in results),
        }
        for name, result in zip(names, results, strict=True):
            body[name] = result.view(name, plan[name], account_id, self.timeout_s)
        log.info(
            "mailbox_checked",
            account=account_id,
            **{
                name: result.code or result.status
                for name, result in zip(names, results, strict=True)
            },
        )
        return body

    async def _one(
        self, name: str, check: Check, app: App, user: str, granted: list[str], token: str
    ) -> Result:
        where = check.target.view() if isinstance(check.target, Server) else check.target
        if check.target is None:
            return Result("skipped", None, NOT_CONFIGURED)
        if not check.allowed(app.provider, granted):
            return Result("skipped", where, MISSING_SCOPE)
        started = time.monotonic()
        if isinstance(check.target, Server):
            login = imap_login if name == "imap" else smtp_login
            outcome = await login(check.target, user, token, self.attempt)
        else:
            outcome = await self._api(check.target, token)
        elapsed = int((time.monotonic() - started) * 1000)
        if outcome.kind == Kind.OK:
            return Result("ok", where, None, outcome.detail, elapsed)
        return Result("failed", where, outcome.kind.value, outcome.detail, elapsed)

    async def _api(self, url: str, token: str) -> Outcome:
        """GET the mail API's profile with the token: 200 ok, 401 refused, 403 forbidden."""
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with self.core.identity.http.get(
                url, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                raw, status = await read_capped(response, 16 << 10), response.status
        except TimeoutError:
            return Outcome(Kind.TIMEOUT, f"no answer within {self.timeout_s:g} s")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(Kind.UNREACHABLE, scrub(str(exc) or type(exc).__name__, token))
        detail = scrub(f"{status} {raw.decode('utf-8', 'replace')}", token)
        if status == 200:
            return Outcome(Kind.OK, f"{status}")
        if status == 401:
            return Outcome(Kind.TOKEN_REFUSED, detail)
        if status == 403:
            return Outcome(Kind.API_FORBIDDEN, detail)
        return Outcome(Kind.PROTOCOL, detail)
