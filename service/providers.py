"""Provider kinds (google, microsoft, oidc): endpoints, scopes, scope rules, consent parameters."""

from __future__ import annotations

from dataclasses import dataclass

KINDS = ("google", "microsoft", "oidc")
MICROSOFT_CLOUDS = {
    "global": ("login.microsoftonline.com", "graph.microsoft.com"),
    "usgov": ("login.microsoftonline.us", "graph.microsoft.us"),
    "china": ("login.chinacloudapi.cn", "microsoftgraph.chinacloudapi.cn"),
}
MICROSOFT_TENANTS = ("common", "organizations", "consumers")
MICROSOFT_UNLISTED = frozenset({"offline_access", "openid", "profile", "email"})
ENDPOINT_FIELDS = ("authorizationUrl", "tokenUrl", "userinfoUrl", "jwksUrl", "revocationUrl")
GOOGLE_SCOPE_ALIASES = {
    "email": "https://www.googleapis.com/auth/userinfo.email",
    "profile": "https://www.googleapis.com/auth/userinfo.profile",
}


@dataclass(frozen=True)
class Endpoints:
    """Where an app's provider takes consent, tokens, revocations and identity questions."""

    authorization_url: str | None = None
    token_url: str | None = None
    userinfo_url: str | None = None
    jwks_url: str | None = None
    revocation_url: str | None = None
    issuer: str | None = None


def default_scopes(kind: str) -> list[str]:
    """Return the scopes every app of this kind asks for."""
    if kind == "microsoft":
        return ["openid", "email", "profile", "offline_access"]
    return ["openid", "email", "profile"]


def builtin_endpoints(kind: str, tenant: str = "common", cloud: str = "global") -> Endpoints:
    """Return the built-in endpoints of google and microsoft apps (oidc has none)."""
    if kind == "google":
        return Endpoints(
            authorization_url="https://accounts.google.com/o/oauth2/v2/auth",
            token_url="https://oauth2.googleapis.com/token",  # noqa: S106 - a URL
            userinfo_url="https://openidconnect.googleapis.com/v1/userinfo",
            jwks_url="https://www.googleapis.com/oauth2/v3/certs",
            revocation_url="https://oauth2.googleapis.com/revoke",
            issuer="https://accounts.google.com",
        )
    if kind == "microsoft":
        login, graph = MICROSOFT_CLOUDS[cloud]
        base = f"https://{login}/{tenant}"
        return Endpoints(
            authorization_url=f"{base}/oauth2/v2.0/authorize",
            token_url=f"{base}/oauth2/v2.0/token",
            userinfo_url=f"https://{graph}/oidc/userinfo",
            jwks_url=f"{base}/discovery/v2.0/keys",
            issuer=f"https://{login}/{{tenantid}}/v2.0",
        )
    return Endpoints()


def normalize_scopes(kind: str, scopes: list[str]) -> set[str]:
    """Return scopes in a form that compares equal across what was asked and what was granted."""
    result: set[str] = set()
    for scope in scopes:
        if kind == "google":
            result.add(GOOGLE_SCOPE_ALIASES.get(scope, scope))
        elif kind == "microsoft":
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


def consent_params(kind: str, scopes: list[str], login_hint: str | None) -> dict[str, str]:
    """Authorization request parameters a provider kind needs beyond the standard ones."""
    params: dict[str, str] = {}
    if kind == "google":
        # a refresh token comes only with offline access, and again only on a new consent
        params.update(access_type="offline", prompt="consent", include_granted_scopes="true")
    elif kind == "microsoft":
        params["prompt"] = "select_account"
    elif "offline_access" in scopes:
        params["prompt"] = "consent"  # OpenID Connect ignores offline_access without it
    if login_hint:
        params["login_hint"] = login_hint
    return params
