"""Provider types (EmailEngine's gmail, gmailService, outlook, outlookService, mailRu, plus oidc).

Endpoints, mail scope presets, scope rules and consent parameters per type.
"""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("gmail", "gmailService", "outlook", "outlookService", "mailRu", "oidc")
SERVICE_KINDS = frozenset({"gmailService", "outlookService"})  # no interactive consent
GOOGLE_KINDS = frozenset({"gmail", "gmailService"})
MICROSOFT_KINDS = frozenset({"outlook", "outlookService"})
LEGACY_KINDS = {"google": "gmail", "microsoft": "outlook"}  # written by earlier versions
BASE_SCOPES = ("imap", "api", "pubsub")
# cloud -> (sign-in host, Graph host, Outlook (IMAP/SMTP) resource)
MICROSOFT_CLOUDS = {
    "global": ("login.microsoftonline.com", "graph.microsoft.com", "outlook.office.com"),
    "gcc-high": ("login.microsoftonline.us", "graph.microsoft.us", "outlook.office365.us"),
    "dod": ("login.microsoftonline.us", "dod-graph.microsoft.us", "outlook.office365.us"),
    "china": ("login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn", "partner.outlook.cn"),
}
LEGACY_CLOUDS = {"usgov": "gcc-high"}
# cloud -> Exchange Online's resource for app-only IMAP/POP/SMTP (docs/microsoft-clouds.md,
# with sources: DoD's Exchange Online is outlook-dod.office365.us, not GCC High's host)
EXCHANGE_APP_ONLY = {
    "global": "outlook.office365.com",
    "gcc-high": "outlook.office365.us",
    "dod": "outlook-dod.office365.us",
    "china": "partner.outlook.cn",
}
MICROSOFT_TENANTS = ("common", "organizations", "consumers")
MICROSOFT_UNLISTED = frozenset({"offline_access", "openid", "profile", "email"})
ENDPOINT_FIELDS = ("authorizationUrl", "tokenUrl", "userinfoUrl", "jwksUrl", "revocationUrl")
GOOGLE_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}
# EmailEngine's presets (lib/oauth/gmail.js GMAIL_SCOPES, OPENID_SCOPES; lib/oauth/outlook.js
# outlookScopes(cloud); lib/oauth/mail-ru.js MAIL_RU_SCOPES).
GMAIL_PRESETS = {
    "imap": ["https://mail.google.com/"],
    "api": ["https://www.googleapis.com/auth/gmail.modify"],
    "pubsub": ["https://www.googleapis.com/auth/pubsub"],
}
OPENID_SCOPES = ["openid", "email", "profile"]
MAIL_RU_SCOPES = ["userinfo", "mail.imap"]
SKIP_PREFIXES = (
    "https://outlook.office.com/",
    "https://graph.microsoft.com/",
    "https://www.googleapis.com/auth/",
)


def current_kind(kind: str) -> str:
    """The provider type of a stored value (google/microsoft from earlier versions upgraded)."""
    return LEGACY_KINDS.get(kind, kind)


def current_cloud(cloud: str) -> str:
    """The cloud name of a stored value (usgov from earlier versions is gcc-high)."""
    return LEGACY_CLOUDS.get(cloud, cloud)


@dataclass(frozen=True)
class Endpoints:
    """Where an app's provider takes consent, tokens, revocations and identity questions."""

    authorization_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    jwks_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None


def outlook_presets(cloud: str) -> dict[str, list[str]]:
    """EmailEngine's Outlook scope lists for a cloud (lib/oauth/outlook.js outlookScopes)."""
    _, graph, outlook = MICROSOFT_CLOUDS.get(current_cloud(cloud), MICROSOFT_CLOUDS["global"])
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


def app_only_scopes(cloud: str, base: str | None) -> list[str]:
    """The client-credentials scope of an outlookService app: one resource's `.default`.

    baseScopes imap asks Exchange Online (IMAP.AccessAsApp and the like); anything else asks
    Microsoft Graph, as EmailEngine does for every outlookService app.
    """
    cloud = current_cloud(cloud)
    if base == "imap":
        return [f"https://{EXCHANGE_APP_ONLY.get(cloud, EXCHANGE_APP_ONLY['global'])}/.default"]
    _, graph, _ = MICROSOFT_CLOUDS.get(cloud, MICROSOFT_CLOUDS["global"])
    return [f"https://{graph}/.default"]


def base_scope_list(kind: str, base: str | None, cloud: str = "global") -> list[str]:
    """The preset a base scope choice stands for (imap when unset or unknown to the type).

    `none` (our addition; apps stored by earlier versions) is the OpenID scopes alone.
    """
    if base == "none":
        return [*OPENID_SCOPES, "offline_access"] if kind in MICROSOFT_KINDS else []
    if kind in GOOGLE_KINDS:
        return list(GMAIL_PRESETS.get(base or "imap", GMAIL_PRESETS["imap"]))
    if kind in MICROSOFT_KINDS:
        presets = outlook_presets(cloud)
        return list(presets.get(base or "imap", presets["imap"]))
    if kind == "mailRu":
        return list(MAIL_RU_SCOPES)
    return list(OPENID_SCOPES)


def default_scopes(
    kind: str,
    base: str | None = None,
    cloud: str = "global",
    extra: list[str] | None = None,
    skip: list[str] | None = None,
) -> list[str]:
    """The scopes an app asks for: EmailEngine's formatExtraScopes (lib/oauth2-apps.js).

    Extra scopes not in the preset come first, then the preset; skipped scopes (bare or
    with a Google / Outlook / Graph prefix) are left out. Gmail adds the OpenID scopes.
    """
    preset = base_scope_list(kind, base, cloud)
    extras = [s for s in extra or [] if s not in preset]
    result = preset + extras if kind == "oidc" else extras + preset
    skipped = skip or []
    if skipped:
        result = [s for s in result if not any(_skips(s, k) for k in skipped)]
    if kind == "gmail":
        result += [s for s in OPENID_SCOPES if s not in result]
    if kind == "oidc" and "openid" not in result:
        result.insert(0, "openid")
    return list(dict.fromkeys(result))


def _skips(scope: str, skip: str) -> bool:
    return scope == skip or any(scope == prefix + skip for prefix in SKIP_PREFIXES)


def builtin_endpoints(kind: str, tenant: str = "common", cloud: str = "global") -> Endpoints:
    """Return the built-in endpoints of gmail, outlook and mailRu apps (oidc has none)."""
    if kind in GOOGLE_KINDS:
        return Endpoints(
            authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - a URL
            userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
            jwks_url="https://www.googleapis.com/oauth2/v3/certs",
            revocation_url="https://oauth2.googleapis.com/revoke",
            issuer="https://accounts.google.com",
        )
    if kind in MICROSOFT_KINDS:
        login, graph, _ = MICROSOFT_CLOUDS.get(current_cloud(cloud), MICROSOFT_CLOUDS["global"])
        base = f"https://{login}/{tenant}"
        return Endpoints(
            authorization_url=f"{base}/oauth2/v2.0/authorize",
            token_url=f"{base}/oauth2/v2.0/token",
            userinfo_url=f"https://{graph}/oidc/userinfo",
            jwks_url=f"{base}/discovery/v2.0/keys",
            issuer=f"https://{login}/{{tenantid}}/v2.0",
        )
    if kind == "mailRu":  # lib/oauth/mail-ru.js
        return Endpoints(
            authorization_url="https://oauth.mail.ru/login",
            token_url="https://oauth.mail.ru/token",  # noqa: S106 - a URL
            userinfo_url="https://oauth.mail.ru/userinfo",
        )
    return Endpoints()


def normalize_scopes(kind: str, scopes: list[str]) -> set[str]:
    """Return scopes in a form that compares equal across what was asked and what was granted."""
    kind = current_kind(kind)
    result: set[str] = set()
    for scope in scopes:
        if kind in GOOGLE_KINDS:
            result.add(GOOGLE_SCOPE_ALIASES.get(scope, scope))
        elif kind in MICROSOFT_KINDS:
            # Microsoft's token responses list resource scopes and may leave out offline_access
            # and the OpenID Connect scopes (the id_token stands for those).
            if scope in MICROSOFT_UNLISTED:
                continue
            # Microsoft reports Graph scopes without their resource prefix.
            short = scope.rsplit("/", 1)[-1] if scope.startswith("https://") else scope
            result.add(short.lower())
        else:
            result.add(scope)
    return result


def missing_scopes(kind: str, required: list[str], granted: list[str]) -> list[str]:
    """Return the required scopes (as configured) that the grant does not include."""
    have = normalize_scopes(kind, granted)
    return [scope for scope in required if not normalize_scopes(kind, [scope]) <= have]


def consent_scopes(kind: str, scopes: list[str]) -> list[str]:
    """The scopes a consent asks for: the app's, plus openid for Outlook (identity pinning)."""
    if kind in MICROSOFT_KINDS and "openid" not in scopes:
        return [*scopes, "openid"]
    return scopes


def consent_params(kind: str, scopes: list[str], login_hint: str | None) -> dict[str, str]:
    """Authorization request parameters a provider type needs beyond the standard ones."""
    params: dict[str, str] = {}
    if kind in GOOGLE_KINDS:
        # a refresh token comes only with offline access, and again only on a new consent
        params.update(access_type="offline", prompt="consent", include_granted_scopes="true")
    elif kind in MICROSOFT_KINDS:
        params["prompt"] = "select_account"
    elif kind == "mailRu":
        params["prompt_force"] = "1"  # as EmailEngine asks (lib/oauth/mail-ru.js)
    elif "offline_access" in scopes:
        params["prompt"] = "consent"  # OpenID Connect ignores offline_access without it
    if login_hint:
        params["login_hint"] = login_hint
    return params
