"""Where an account's mailbox is checked and which granted scopes let each check run.

The servers are the provider type's defaults (per Microsoft cloud where they differ; see
docs/microsoft-clouds.md), overridden by the app's imapHost/imapPort/imapTls and
smtpHost/smtpPort/smtpTls fields. The mail API is Gmail's users/me/profile or Graph's /me,
or the app's mailApiUrl. oidc apps have no defaults; their mailScope names the scope a
token needs for the mailbox (none when unset).
"""

from __future__ import annotations

from dataclasses import dataclass

from service.apps import App
from service.mail.wire import Server, Tls
from service.providers import (
    GOOGLE_KINDS,
    MICROSOFT_CLOUDS,
    MICROSOFT_KINDS,
    current_cloud,
    normalize_scopes,
)

IMAP_PORTS = {Tls.IMPLICIT: 993, Tls.STARTTLS: 143, Tls.PLAIN: 143}
SMTP_PORTS = {Tls.IMPLICIT: 465, Tls.STARTTLS: 587, Tls.PLAIN: 587}
# cloud -> (IMAP host, SMTP submission host); Exchange Online's per cloud
MICROSOFT_MAIL_HOSTS = {
    "global": ("outlook.office365.com", "smtp.office365.com"),
    "gcc-high": ("outlook.office365.us", "smtp.office365.us"),
    "dod": ("outlook.office365.us", "smtp.office365.us"),
    "china": ("partner.outlook.cn", "smtp.partner.outlook.cn"),
}
GMAIL_HOSTS = ("imap.gmail.com", "smtp.gmail.com")
MAIL_RU_HOSTS = ("imap.mail.ru", "smtp.mail.ru")
GMAIL_PROFILE = "https://gmail.googleapis.com/gmail/v1/users/me/profile"
GMAIL_FULL = "https://mail.google.com/"
GMAIL_API_SCOPES = (
    GMAIL_FULL,
    *(
        f"https://www.googleapis.com/auth/gmail.{name}"
        for name in ("modify", "readonly", "metadata", "compose", "insert", "labels")
    ),
)


@dataclass(frozen=True)
class Check:
    """One protocol's check as configured: where (None: nowhere known) and which scopes allow it.

    `scopes`: any one of them granted lets the check run; empty: no scope is needed.
    """

    target: Server | str | None
    scopes: tuple[str, ...]

    def allowed(self, kind: str, granted: list[str]) -> bool:
        """Whether the granted scopes let this check run (as the provider type compares them)."""
        have = normalize_scopes(kind, granted)
        return not self.scopes or bool(normalize_scopes(kind, list(self.scopes)) & have)


def _server(app: App, proto: str, host: str | None, default_tls: Tls) -> Server | None:
    host = app.fields.get(f"{proto}Host") or host
    if not host:
        return None
    tls = Tls(app.fields.get(f"{proto}Tls", default_tls.value))
    ports = IMAP_PORTS if proto == "imap" else SMTP_PORTS
    return Server(host, int(app.fields.get(f"{proto}Port") or ports[tls]), tls)


def _default_hosts(app: App) -> tuple[str | None, str | None]:
    if app.provider in GOOGLE_KINDS:
        return GMAIL_HOSTS
    if app.provider in MICROSOFT_KINDS:
        cloud = current_cloud(app.cloud)
        return MICROSOFT_MAIL_HOSTS.get(cloud, MICROSOFT_MAIL_HOSTS["global"])
    if app.provider == "mailRu":
        return MAIL_RU_HOSTS
    return None, None


def checks(app: App) -> dict[str, Check]:
    """The imap, smtp and api checks of an app's accounts."""
    imap_host, smtp_host = _default_hosts(app)
    imap, smtp, api = _scopes(app)
    return {
        "imap": Check(_server(app, "imap", imap_host, Tls.IMPLICIT), imap),
        "smtp": Check(_server(app, "smtp", smtp_host, Tls.STARTTLS), smtp),
        "api": Check(app.fields.get("mailApiUrl") or _api_url(app), api),
    }


def _api_url(app: App) -> str | None:
    if app.provider in GOOGLE_KINDS:
        return GMAIL_PROFILE
    if app.provider in MICROSOFT_KINDS:
        _, graph, _ = MICROSOFT_CLOUDS.get(current_cloud(app.cloud), MICROSOFT_CLOUDS["global"])
        return f"https://{graph}/v1.0/me"
    return None


def _scopes(app: App) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The scopes (any one suffices) of the imap, smtp and api checks."""
    if app.provider in GOOGLE_KINDS:
        return (GMAIL_FULL,), (GMAIL_FULL,), GMAIL_API_SCOPES
    if app.provider in MICROSOFT_KINDS:
        _, graph, outlook = MICROSOFT_CLOUDS.get(
            current_cloud(app.cloud), MICROSOFT_CLOUDS["global"]
        )
        exchange, _ = MICROSOFT_MAIL_HOSTS.get(current_cloud(app.cloud), ("", ""))
        return (
            (f"https://{outlook}/IMAP.AccessAsUser.All", f"https://{exchange}/.default"),
            (f"https://{outlook}/SMTP.Send", f"https://{exchange}/.default"),
            tuple(
                f"https://{graph}/{name}"
                for name in ("User.Read", "Mail.Read", "Mail.ReadWrite", ".default")
            ),
        )
    if app.provider == "mailRu":
        return ("mail.imap",), ("mail.imap",), ("mail.imap",)
    scope = app.fields.get("mailScope")
    return ((scope,),) * 3 if scope else ((), (), ())
