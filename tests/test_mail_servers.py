"""Where mailboxes are checked: provider defaults per cloud, app overrides, the scopes needed."""

from __future__ import annotations

from service.apps import App
from service.mail.wire import Server, Tls
from service.mail_servers import checks


def app(provider: str, **fields: str) -> App:
    """An app of `provider` with these stored fields."""
    return App(id="a", provider=provider, client_id="c", fields=fields)


def test_provider_defaults() -> None:
    """Gmail and Outlook servers by default: IMAP on 993 with TLS, SMTP on 587 with STARTTLS."""
    gmail = checks(app("gmail"))
    assert gmail["imap"].target == Server("imap.gmail.com", 993, Tls.IMPLICIT)
    assert gmail["smtp"].target == Server("smtp.gmail.com", 587, Tls.STARTTLS)
    assert gmail["api"].target == "https://gmail.googleapis.com/gmail/v1/users/me/profile"
    outlook = checks(app("outlook"))
    assert outlook["imap"].target == Server("outlook.office365.com", 993, Tls.IMPLICIT)
    assert outlook["smtp"].target == Server("smtp.office365.com", 587, Tls.STARTTLS)
    assert outlook["api"].target == "https://graph.microsoft.com/v1.0/me"
    oidc = checks(app("oidc"))
    assert [oidc[p].target for p in ("imap", "smtp", "api")] == [None, None, None]


def test_national_cloud_hosts() -> None:
    """A GCC High app checks Exchange's and Graph's US government hosts."""
    gov = checks(app("outlook", cloud="gcc-high"))
    assert gov["imap"].target == Server("outlook.office365.us", 993, Tls.IMPLICIT)
    assert gov["smtp"].target == Server("smtp.office365.us", 587, Tls.STARTTLS)
    assert gov["api"].target == "https://graph.microsoft.us/v1.0/me"


def test_app_overrides() -> None:
    """imapHost/imapPort/imapTls and smtp* replace the defaults; the port follows the TLS mode."""
    found = checks(app("gmail", imapHost="imap.example.test", imapTls="starttls", smtpTls="tls"))
    assert found["imap"].target == Server("imap.example.test", 143, Tls.STARTTLS)
    assert found["smtp"].target == Server("smtp.gmail.com", 465, Tls.IMPLICIT)
    found = checks(app("oidc", smtpHost="10.0.0.5", smtpPort="2525", smtpTls="plain"))
    assert found["smtp"].target == Server("10.0.0.5", 2525, Tls.PLAIN)


def test_scopes_that_allow_each_check() -> None:
    """Gmail's full scope allows all three, gmail.readonly the API only; Outlook per resource."""
    gmail = checks(app("gmail"))
    full = ["https://mail.google.com/", "openid"]
    readonly = ["https://www.googleapis.com/auth/gmail.readonly"]
    assert all(gmail[p].allowed("gmail", full) for p in ("imap", "smtp", "api"))
    assert [gmail[p].allowed("gmail", readonly) for p in ("imap", "smtp", "api")] == [
        False,
        False,
        True,
    ]
    outlook = checks(app("outlook"))
    granted = ["https://outlook.office.com/IMAP.AccessAsUser.All", "offline_access"]
    assert [outlook[p].allowed("outlook", granted) for p in ("imap", "smtp", "api")] == [
        True,
        False,
        False,
    ]
    oidc = checks(app("oidc", mailScope="mail.read"))
    assert oidc["imap"].allowed("oidc", ["mail.read"]) and not oidc["smtp"].allowed("oidc", [])
    assert checks(app("oidc"))["imap"].allowed("oidc", [])
