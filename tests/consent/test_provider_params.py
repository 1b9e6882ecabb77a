"""Consent URLs of google and microsoft apps carry what those providers need."""

from __future__ import annotations

from service.clock import SystemClock, iso
from service.core import Core
from service.providers import consent_params, missing_scopes
from tests.support.consent import Client, base_url, query_of, start_consent


async def test_google_consent_url(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core
) -> None:
    """Google: offline access, consent every time, granted scopes kept, login_hint, PKCE."""
    app = {
        "id": "gmail",
        "provider": "gmail",
        "clientId": "cid.apps.googleusercontent.com",
        "clientSecret": "s",
        "additionalScopes": ["https://mail.google.com/", "email"],
    }
    await flow_core.apps.create(app, iso(SystemClock().now_ms()))
    oauth2 = {"provider": "gmail", "auth": {"user": "g@example.com"}, "refreshToken": "rt"}
    resp = await flow_client.post(
        "/v1/account", json={"account": "g", "oauth2": oauth2}, headers=flow_admin
    )
    assert resp.status == 200
    url = await start_consent(flow_client, flow_admin, account="g", oauth2={"provider": "gmail"})
    assert url.startswith("https://accounts.google.com/o/oauth2/v2/auth?")
    params = query_of(url)
    # EmailEngine's order: extra scopes not in the preset, the IMAP preset, the OpenID ones
    assert params["scope"] == "email https://mail.google.com/ openid profile"
    assert params["access_type"] == "offline" and params["prompt"] == "consent"
    assert params["include_granted_scopes"] == "true" and params["login_hint"] == "g@example.com"
    assert params["code_challenge_method"] == "S256" and params["response_type"] == "code"
    assert params["redirect_uri"] == f"{base_url(flow_client)}/oauth/callback"


async def test_microsoft_consent_url(
    flow_client: Client, flow_admin: dict[str, str], flow_core: Core
) -> None:
    """Microsoft: the app's tenant and cloud, offline_access, prompt=select_account."""
    app = {
        "id": "outlook",
        "provider": "outlook",
        "clientId": "cid",
        "clientSecret": "s",
        "tenant": "organizations",
        "cloud": "gcc-high",
        "additionalScopes": ["https://graph.microsoft.com/Mail.Read"],
        "redirectUrl": "https://tokens.example.com/oauth/callback",
    }
    await flow_core.apps.create(app, iso(SystemClock().now_ms()))
    url = await start_consent(flow_client, flow_admin, oauth2={"provider": "outlook"})
    assert url.startswith("https://login.microsoftonline.us/organizations/oauth2/v2.0/authorize?")
    params = query_of(url)
    assert "offline_access" in params["scope"].split()
    assert params["prompt"] == "select_account" and "login_hint" not in params
    assert params["redirect_uri"] == "https://tokens.example.com/oauth/callback"


def test_oidc_offline_access_asks_for_consent() -> None:
    """OpenID Connect ignores offline_access without prompt=consent, so it is sent with it."""
    assert consent_params("oidc", ["openid", "offline_access"], None) == {"prompt": "consent"}
    assert consent_params("oidc", ["openid"], "u@x") == {"login_hint": "u@x"}


def test_microsoft_grant_without_openid_scopes_is_complete() -> None:
    """Microsoft lists resource scopes only: openid, profile, email are not reported missing."""
    required = [
        "openid",
        "email",
        "profile",
        "offline_access",
        "https://graph.microsoft.com/Mail.Read",
    ]
    assert missing_scopes("outlook", required, ["https://graph.microsoft.com/Mail.Read"]) == []
    assert missing_scopes("outlook", required, ["User.Read"]) == [
        "https://graph.microsoft.com/Mail.Read"
    ]
