"""The mailbox check against a real Dovecot whose OAuth2 passdb asks the test provider."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock
from service.core import Core
from tests.support.dovecot import (
    USER,
    Dovecot,
    dovecot,
    import_mailbox,
    mail_app,
    start_dovecot,
)
from tests.support.idp import Idp
from tests.support.logs import logged_lines
from tests.support.sentinel import free_ports

__all__ = ["dovecot"]  # the fixture, used by name
Client = TestClient[web.Request, web.Application]


async def verify(client: Client, admin: dict[str, str]) -> tuple[str, dict[str, Any]]:
    """POST /v1/account/alice/verify: the raw text and the parsed answer."""
    resp = await client.post("/v1/account/alice/verify", headers=admin)
    text = await resp.text()
    assert resp.status == 200, text
    assert resp.headers["Cache-Control"] == "no-store"
    return text, await resp.json()


async def test_retired_token_refused_refreshed_token_logs_in(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """A token the provider retired fails IMAP, SMTP and the API; the refreshed one passes all."""
    await mail_app(core, idp, dovecot)
    minted = await import_mailbox(client, admin, idp)
    with logged_lines() as lines:
        first_text, first = await verify(client, admin)
        idp.revoke_access_token(minted["access_token"])
        retired_text, retired = await verify(client, admin)
        refreshed = await client.post("/v1/account/alice/refresh", headers=admin)
        assert refreshed.status == 200, await refreshed.text()
        fresh_text, fresh = await verify(client, admin)
    assert [first[p]["status"] for p in ("imap", "smtp", "api")] == ["ok"] * 3, str(first)
    assert first["imap"]["server"] == {
        "host": "127.0.0.1",
        "port": dovecot.imap_port,
        "tls": "plain",
    }
    assert [retired[p].get("code") for p in ("imap", "smtp", "api")] == ["tokenRefused"] * 3
    assert not retired["ok"] and "refresh" in retired["imap"]["remediation"]
    assert "/v1/account/alice/refresh" in retired["smtp"]["remediation"]
    assert [fresh[p]["status"] for p in ("imap", "smtp", "api")] == ["ok"] * 3 and fresh["ok"]
    new_token = (await core.token_service.fresh_token("alice", 0)).view.access_token
    assert new_token and new_token != minted["access_token"]
    shown = first_text + retired_text + fresh_text + lines.text + dovecot.log()
    for secret in (minted["access_token"], new_token):
        assert secret not in shown
    assert [line["imap"] for line in lines.events("mailbox_checked")] == [
        "ok",
        "tokenRefused",
        "ok",
    ]


async def test_token_refreshed_first_when_none_is_usable(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """An account without a usable access token is refreshed by the token path, then logs in."""
    await mail_app(core, idp, dovecot, mailApiUrl=None)
    await import_mailbox(client, admin, idp, with_access=False)
    refreshes = idp.stats()["refresh_ok"]
    _, body = await verify(client, admin)
    assert body["imap"]["status"] == body["smtp"]["status"] == "ok", body
    assert idp.stats()["refresh_ok"] == refreshes + 1
    account = await core.accounts.require("alice")
    assert account.refreshed_at_ms is not None and account.encrypted_access is not None


async def test_mailbox_with_imap_off_is_imap_disabled(
    client: Client, admin: dict[str, str], core: Core, idp: Idp
) -> None:
    """A server refusing a good token with Gmail's "not enabled for IMAP" words: imapDisabled."""
    refusal = "Your account is not enabled for IMAP use."
    # This Dovecot turns the provider's mail_refusal claim into a refused login with that reason.
    server = start_dovecot(
        idp.introspection_url_with_credentials(),
        pass_attrs="nologin=y reason=%{oauth2:mail_refusal}",
    )
    idp.set_claims(USER, mail_refusal=refusal)
    try:
        await mail_app(core, idp, server, mailApiUrl=None, smtpHost=None)
        await import_mailbox(client, admin, idp)
        _, body = await verify(client, admin)
    finally:
        idp.set_claims(USER, mail_refusal=None)
        server.stop()
    assert body["imap"]["status"] == "failed" and body["imap"]["code"] == "imapDisabled", body
    assert refusal in body["imap"]["message"] and "ImapEnabled" in body["imap"]["remediation"]


async def test_missing_scope_skips(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """A grant without the app's mail scope skips every protocol as missingScope, no login tried."""
    await mail_app(core, idp, dovecot)
    await import_mailbox(client, admin, idp, scope="openid email offline_access")
    before = dovecot.log().count("oauth2(")
    _, body = await verify(client, admin)
    for proto in ("imap", "smtp", "api"):
        assert body[proto]["status"] == "skipped" and body[proto]["code"] == "missingScope"
        assert "mail.read" in body[proto]["remediation"]
    assert body["ok"] and dovecot.log().count("oauth2(") == before


async def test_unreachable_server_classified(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """A port nobody listens on is `unreachable` with a remediation naming the app's fields."""
    (closed,) = free_ports(1)
    await mail_app(core, idp, dovecot, imapPort=closed, smtpHost=None, mailApiUrl=None)
    await import_mailbox(client, admin, idp)
    _, body = await verify(client, admin)
    assert body["imap"]["status"] == "failed" and body["imap"]["code"] == "unreachable"
    assert "imapHost" in body["imap"]["remediation"] and not body["ok"]
    assert body["smtp"] == {
        "status": "skipped",
        "code": "notConfigured",
        "remediation": body["smtp"]["remediation"],
    }
    assert body["api"]["code"] == "notConfigured"


async def test_delegated_mailbox_logs_in_by_its_address(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """An account with a delegated (shared) mailbox logs in as that mailbox, not as its user."""
    await mail_app(core, idp, dovecot, mailApiUrl=None)
    auth = {"user": "owner@example.test", "delegatedUser": USER}
    await import_mailbox(client, admin, idp, auth=auth)
    _, body = await verify(client, admin)
    assert body["user"] == USER
    assert body["imap"]["status"] == body["smtp"]["status"] == "ok", body


async def test_unknown_account_and_scope_of_api_token(
    client: Client, admin: dict[str, str], core: Core, idp: Idp, dovecot: Dovecot
) -> None:
    """An unknown account is 404 AccountNotFound; an API token bound to another account is 403."""
    resp = await client.post("/v1/account/nobody/verify", headers=admin)
    assert resp.status == 404 and (await resp.json())["code"] == "AccountNotFound"
    await mail_app(core, idp, dovecot)
    await import_mailbox(client, admin, idp)
    token, _ = await core.tokens.create(["api"], "bob", "test", None, SystemClock().now_ms())
    resp = await client.post(
        "/v1/account/alice/verify", headers={"Authorization": f"Bearer {token}"}
    )
    assert resp.status == 403
