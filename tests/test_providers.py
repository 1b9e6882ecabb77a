"""Provider types: EmailEngine's mail scope presets per provider, base scopes and cloud."""

from __future__ import annotations

import pytest

from service.providers import (
    builtin_endpoints,
    consent_scopes,
    current_cloud,
    current_kind,
    default_scopes,
)

# The expected lists are what EmailEngine 2.79.2 asks for: lib/oauth/gmail.js (GMAIL_SCOPES,
# OPENID_SCOPES added by the GmailOauth constructor), lib/oauth/outlook.js (outlookScopes),
# lib/oauth/mail-ru.js (MAIL_RU_SCOPES), combined by formatExtraScopes in lib/oauth2-apps.js.
OPENID = ["openid", "email", "profile"]
GMAIL = {
    "imap": ["https://mail.google.com/", *OPENID],
    "api": ["https://www.googleapis.com/auth/gmail.modify", *OPENID],
    "pubsub": ["https://www.googleapis.com/auth/pubsub", *OPENID],
}


def _outlook(outlook: str, graph: str) -> dict[str, list[str]]:
    return {
        "imap": [
            f"https://{outlook}/IMAP.AccessAsUser.All",
            f"https://{outlook}/SMTP.Send",
            "offline_access",
            "openid",
            "profile",
        ],
        "api": [
            f"https://{graph}/Mail.ReadWrite",
            f"https://{graph}/Mail.Send",
            "offline_access",
            f"https://{graph}/User.Read",
        ],
    }


OUTLOOK = {
    "global": _outlook("outlook.office.com", "graph.microsoft.com"),
    "gcc-high": _outlook("outlook.office365.us", "graph.microsoft.us"),
    "dod": _outlook("outlook.office365.us", "dod-graph.microsoft.us"),
    "china": _outlook("partner.outlook.cn", "microsoftgraph.chinacloudapi.cn"),
}


@pytest.mark.parametrize("base", [None, "imap", "api", "pubsub"])
def test_gmail_presets(base: str | None) -> None:
    """gmail: the base scope's list (imap when unset) followed by the OpenID scopes."""
    assert default_scopes("gmail", base) == GMAIL[base or "imap"]


@pytest.mark.parametrize("cloud", list(OUTLOOK))
@pytest.mark.parametrize("base", [None, "imap", "api", "pubsub"])
def test_outlook_presets(cloud: str, base: str | None) -> None:
    """outlook: the cloud's imap or api list; pubsub (Gmail only) falls back to imap."""
    want = OUTLOOK[cloud]["api" if base == "api" else "imap"]
    assert default_scopes("outlook", base, cloud) == want


def test_mailru_preset() -> None:
    """mailRu: userinfo and mail.imap, whatever the base scope."""
    assert default_scopes("mailRu") == ["userinfo", "mail.imap"]
    assert default_scopes("mailRu", "api") == ["userinfo", "mail.imap"]


def test_extra_scopes_come_first_and_skip_leaves_out() -> None:
    """Extra scopes not in the preset go first; skipScopes match bare or prefixed names."""
    extra = ["https://www.googleapis.com/auth/postmaster.readonly", "https://mail.google.com/"]
    assert default_scopes("gmail", "imap", extra=extra) == [
        "https://www.googleapis.com/auth/postmaster.readonly",
        "https://mail.google.com/",
        *OPENID,
    ]
    assert default_scopes("outlook", None, "global", ["User.Read"], ["SMTP.Send"]) == [
        "User.Read",
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "offline_access",
        "openid",
        "profile",
    ]
    assert default_scopes("gmail", "api", skip=["gmail.modify"]) == OPENID


def test_none_and_oidc_keep_openid_scopes() -> None:
    """BaseScopes none (apps of earlier versions) and oidc apps ask for the OpenID scopes."""
    assert default_scopes("gmail", "none") == OPENID
    assert default_scopes("outlook", "none") == [*OPENID, "offline_access"]
    assert default_scopes("oidc", extra=["mail.read"]) == [*OPENID, "mail.read"]


def test_outlook_consent_adds_openid_for_identity() -> None:
    """An outlook api preset has no openid; the consent adds it so the user can be pinned."""
    api = OUTLOOK["global"]["api"]
    assert consent_scopes("outlook", api) == [*api, "openid"]
    assert consent_scopes("gmail", GMAIL["imap"]) == GMAIL["imap"]


def test_earlier_names_read_as_today() -> None:
    """google/microsoft and cloud usgov, as earlier versions stored them, read as today's."""
    assert current_kind("google") == "gmail" and current_kind("microsoft") == "outlook"
    assert current_kind("mailRu") == "mailRu" and current_cloud("usgov") == "gcc-high"


def test_cloud_and_mailru_endpoints() -> None:
    """Each cloud signs in at its own host; Mail.ru uses oauth.mail.ru."""
    dod = builtin_endpoints("outlook", "organizations", "dod")
    assert dod.token_url == "https://login.microsoftonline.us/organizations/oauth2/v2.0/token"
    china = builtin_endpoints("outlookService", "t", "china")
    assert china.authorization_url == "https://login.chinacloudapi.cn/t/oauth2/v2.0/authorize"
    mailru = builtin_endpoints("mailRu")
    assert mailru.authorization_url == "https://oauth.mail.ru/login"
    assert mailru.token_url == "https://oauth.mail.ru/token"
