"""Settings pages: OAuth2 apps (add, edit, delete) and service settings, bad input kept."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.core import Core
from service.settings import OAUTH_TOKENS_API
from service.webhooks.headers import MASK, WebhookHeaders
from tests.support.admin import post_form
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]
SECRET = "client-secret-never-shown"


def app_form(idp: Idp, **extra: str) -> dict[str, str]:
    """A filled-in add-app form for an oidc app at the test provider."""
    return {
        "id": "mail",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": SECRET,
        "issuer": idp.issuer,
        "additionalScopes": "mail.read  https://example.test/a\nhttps://example.test/b",
        **extra,
    }


async def test_add_app_with_additional_scopes(operator: Client, core: Core, idp: Idp) -> None:
    """The form creates the app; scopes may be space- or newline-separated; the secret stays."""
    resp = await post_form(operator, "/admin/apps/new", app_form(idp))
    assert resp.status == 303 and resp.headers["Location"] == "/admin/apps/mail"
    app = await core.apps.require("mail")
    assert app.additional_scopes == [
        "mail.read",
        "https://example.test/a",
        "https://example.test/b",
    ]
    assert core.apps.client_secret(app) == SECRET
    page = await (await operator.get("/admin/apps/mail")).text()
    assert "App mail saved." in page
    assert "http://127.0.0.1:8080/oauth/callback" in page  # the redirect URL to register
    assert SECRET not in page
    listing = await (await operator.get("/admin/apps")).text()
    assert "mail" in listing and "oidc" in listing


async def test_mail_check_servers_on_the_form(operator: Client, core: Core, idp: Idp) -> None:
    """The form sets the mailbox check's servers (port as a number); emptied, they are removed."""
    fields = {"imapHost": "imap.example.test", "imapPort": "1993", "imapTls": "tls"}
    resp = await post_form(operator, "/admin/apps/new", {**app_form(idp), **fields})
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("mail")
    assert {k: app.fields[k] for k in fields} == fields
    page = await (await operator.get("/admin/apps/mail")).text()
    assert 'value="imap.example.test"' in page and 'value="1993"' in page
    bad = await post_form(operator, "/admin/apps/mail", {**app_form(idp), "imapPort": "x"})
    assert bad.status == 400 and "imapPort must be an integer" in await bad.text()
    emptied = {**app_form(idp), "imapHost": "", "imapPort": "", "imapTls": ""}
    resp = await post_form(operator, "/admin/apps/mail", emptied)
    assert resp.status == 303, await resp.text()
    assert not {"imapHost", "imapPort", "imapTls"} & set((await core.apps.require("mail")).fields)


async def test_add_app_bad_input_keeps_what_was_typed(operator: Client, idp: Idp) -> None:
    """A refused form comes back (400) naming the problem, with the typed values but no secret."""
    cases: list[tuple[dict[str, str], str]] = [
        ({"clientSecret": ""}, "clientSecret"),
        ({"issuer": "", "provider": "oidc"}, "oidc apps need issuer"),
        ({"id": "bad id!"}, "app"),
        ({"provider": "outlook", "issuer": "", "tenant": "bad tenant!"}, "authority is not valid"),
        ({"issuer": "ftp://idp.example"}, "issuer"),
    ]
    for fields, message in cases:
        resp = await post_form(operator, "/admin/apps/new", app_form(idp, **fields))
        body = await resp.text()
        assert resp.status == 400, (fields, body[:300])
        assert message in body, (fields, body)
        assert f'value="{idp.client_id}"' in body  # what the user typed is kept
        assert SECRET not in body  # but never the secret
        assert 'aria-invalid="true"' in body or message == "app"


async def test_edit_keeps_secret_and_delete_asks_first(
    operator: Client, core: Core, oidc_app: str, import_account: Callable[..., Awaitable[Any]]
) -> None:
    """An empty secret keeps the stored one; delete is confirmed and refused while in use."""
    form = {"clientId": "new-client-id", "issuer": "", "additionalScopes": "x.read"}
    stored = (await core.apps.require(oidc_app)).fields
    form.update({k: stored[k] for k in ("tokenUrl", "authorizationUrl", "revocationUrl")})
    form["issuer"] = stored["issuer"]
    resp = await post_form(operator, f"/admin/apps/{oidc_app}", form)
    assert resp.status == 303, await resp.text()
    app = await core.apps.require(oidc_app)
    assert app.client_id == "new-client-id" and app.additional_scopes == ["x.read"]
    assert core.apps.client_secret(app) is not None
    confirm = await operator.get(f"/admin/apps/{oidc_app}/delete")
    assert "Delete the OAuth2 app" in await confirm.text()
    await import_account("someone")
    path = f"/admin/apps/{oidc_app}/delete"
    resp = await post_form(operator, path, {}, page=path)
    assert resp.status == 409 and "delete them first" in await resp.text()
    await core.removal.delete(await core.accounts.require("someone"))
    resp = await post_form(operator, path, {}, page=path)
    assert resp.status == 303 and await core.apps.get(oidc_app) is None


async def test_edit_frozen_issuer_while_in_use(
    operator: Client, core: Core, oidc_app: str, import_account: Callable[..., Awaitable[Any]]
) -> None:
    """Changing the issuer of an app with accounts is refused on the page with the reason."""
    await import_account("someone")
    stored = (await core.apps.require(oidc_app)).fields
    form = {k: stored[k] for k in ("clientId", "tokenUrl", "authorizationUrl", "revocationUrl")}
    form["issuer"] = "http://127.0.0.1:9/elsewhere"
    resp = await post_form(operator, f"/admin/apps/{oidc_app}", form)
    body = await resp.text()
    assert resp.status == 409 and "cannot change while the app has accounts" in body
    assert 'value="http://127.0.0.1:9/elsewhere"' in body


async def test_checkbox_enables_the_token_endpoint(
    operator: Client, core: Core, import_account: Callable[..., Awaitable[Any]]
) -> None:
    """The Security checkbox is what turns the oauth-token endpoint on (and off)."""
    await import_account("example")
    token, _ = await core.tokens.create(["oauth-tokens"], None, None, None, core.clock.now_ms())
    bearer = {"Authorization": f"Bearer {token}"}
    url = "/v1/account/example/oauth-token"
    assert (await operator.get(url, headers=bearer)).status == 403
    form = {OAUTH_TOKENS_API: "on", "allEvents": "on"}
    resp = await post_form(operator, "/admin/settings", form)
    assert resp.status == 303
    assert (await operator.get(url, headers=bearer)).status == 200
    page = await (await operator.get("/admin/settings")).text()
    assert "Settings saved." in page and 'id="enable-token-api" checked' in page
    await post_form(operator, "/admin/settings", {"allEvents": "on"})
    assert (await core.settings.all())[OAUTH_TOKENS_API] is False


async def test_settings_webhooks_saved(operator: Client, core: Core) -> None:
    """URL, enabled, chosen events and custom headers are stored as the JSON API would.

    Header values are shown masked; saving the page again keeps them.
    """
    form: dict[str, Any] = {
        "webhooks": "https://hooks.example.com/in",
        "webhooksEnabled": "on",
        "events": ["accountAdded", "authenticationError"],
        "webhookHeaders": "X-Team: team-v4lue\n\nX-Env: env-v4lue",
        "allowedRedirectUrls": "https://app.example.com/done",
    }
    resp = await post_form(operator, "/admin/settings", form)
    assert resp.status == 303
    settings = await core.settings.all()
    assert settings["webhooks"] == "https://hooks.example.com/in" and settings["webhooksEnabled"]
    assert settings["webhookEvents"] == ["accountAdded", "authenticationError"]
    assert settings["webhookHeaders"] == {"X-Team": MASK, "X-Env": MASK}
    assert settings["allowedRedirectUrls"] == ["https://app.example.com/done"]
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    assert await headers.values() == {"X-Team": "team-v4lue", "X-Env": "env-v4lue"}
    page = await (await operator.get("/admin/settings")).text()
    assert f"X-Team: {MASK}" in page and "v4lue" not in page
    form["webhookHeaders"] = f"X-Team: {MASK}\nX-Env: staging"
    assert (await post_form(operator, "/admin/settings", form)).status == 303
    assert await headers.values() == {"X-Team": "team-v4lue", "X-Env": "staging"}


async def test_settings_bad_input_keeps_what_was_typed(operator: Client, core: Core) -> None:
    """A bad URL or header line is refused (400) with the message and the typed values."""
    for fields, message in (
        ({"webhooks": "ftp://hooks.example.com"}, "webhooks"),
        ({"webhookHeaders": "no colon here"}, "Name: value"),
    ):
        form = {"webhookHeaders": "", "webhooksEnabled": "on", **fields}
        resp = await post_form(operator, "/admin/settings", form)
        body = await resp.text()
        assert resp.status == 400 and message in body
        assert next(iter(fields.values())) in body
        assert 'id="webhooks-enabled" checked' in body
    assert (await core.settings.all())["webhooks"] is None


async def test_webhook_secret_shown_once_and_test_event(operator: Client, core: Core) -> None:
    """A rotated secret is on that answer only; the test event needs a URL and a secret."""
    resp = await post_form(operator, "/admin/settings/webhook-test", {}, page="/admin/settings")
    assert resp.status == 303
    assert "rotate a secret first" in await (await operator.get("/admin/settings")).text()
    resp = await post_form(operator, "/admin/settings/webhook-secret", {}, page="/admin/settings")
    body = await resp.text()
    assert resp.status == 200 and "whsec_" in body and resp.headers["Cache-Control"] == "no-store"
    assert "whsec_" not in await (await operator.get("/admin/settings")).text()
    await core.settings.update({"webhooks": "http://127.0.0.1:9/closed"})
    await post_form(operator, "/admin/settings/webhook-test", {}, page="/admin/settings")
    page = await (await operator.get("/admin/settings")).text()
    assert "Test event msg_" in page and "whsec_" not in page


async def test_operator_changes_endpoint_urls_on_the_page(
    operator: Client, core: Core, oidc_app: str
) -> None:
    """The settings pages carry the operator's authority: an app's token URL can change."""
    stored = (await core.apps.require(oidc_app)).fields
    form = {k: stored[k] for k in ("clientId", "issuer", "authorizationUrl", "revocationUrl")}
    form["tokenUrl"] = "http://127.0.0.1:9/moved-token"
    resp = await post_form(operator, f"/admin/apps/{oidc_app}", form)
    assert resp.status == 303, await resp.text()
    assert (await core.apps.require(oidc_app)).fields["tokenUrl"] == form["tokenUrl"]


async def test_app_form_speaks_emailengine_vocabulary(operator: Client, core: Core) -> None:
    """The form offers EmailEngine's provider types and base scopes; authority and cloud save."""
    page = await (await operator.get("/admin/apps/new")).text()
    for word in ("gmailService", "outlookService", "mailRu"):
        assert f'value="{word}"' in page, word
    page = await (await operator.get("/admin/apps/new?provider=outlook")).text()
    for word in ("Base scopes", "Additional scopes", 'value="gcc-high"', 'value="api"'):
        assert word in page, word
    form = {
        "id": "ol",
        "provider": "outlook",
        "clientId": "cid",
        "clientSecret": SECRET,
        "tenant": "organizations",
        "cloud": "gcc-high",
        "baseScopes": "api",
        "additionalScopes": "Calendars.Read",
        "enabled": "on",
    }
    resp = await post_form(operator, "/admin/apps/new", form)
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("ol")
    assert (app.provider, app.fields["tenant"], app.cloud) == (
        "outlook",
        "organizations",
        "gcc-high",
    )
    assert app.scopes[:2] == ["Calendars.Read", "https://graph.microsoft.us/Mail.ReadWrite"]
    assert app.enabled


async def test_app_form_declares_grant_lifetimes(operator: Client, core: Core) -> None:
    """The form offers publishingStatus and platform; each saves on its provider type only."""
    page = await (await operator.get("/admin/apps/new?provider=gmail")).text()
    assert 'id="publishing-status"' in page and 'id="platform"' not in page
    page = await (await operator.get("/admin/apps/new?provider=outlook")).text()
    assert 'id="platform"' in page and 'id="publishing-status"' not in page
    form = {
        "id": "ol",
        "provider": "outlook",
        "clientId": "cid",
        "clientSecret": SECRET,
        "tenant": "organizations",
        "platform": "spa",
        "publishingStatus": "testing",  # not an outlook field: left out
    }
    resp = await post_form(operator, "/admin/apps/new", form)
    assert resp.status == 303, await resp.text()
    app = await core.apps.require("ol")
    assert app.fields["platform"] == "spa" and "publishingStatus" not in app.fields
    edit = await (await operator.get("/admin/apps/ol")).text()
    assert '<option value="spa" selected>' in edit and 'id="publishing-status"' not in edit
