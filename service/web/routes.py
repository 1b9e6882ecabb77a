"""The one routes table: every route of the web process, each named."""

from __future__ import annotations

from aiohttp import web

from service.web import (
    accounts,
    apps,
    audit,
    consent,
    ee_account_update,
    ee_form,
    ee_tokens,
    ee_verify,
    health,
    metrics,
    oauth_token,
    openapi,
    settings,
    webhooks,
)
from service.web.admin.routes import admin_routes
from service.web.templates import templates_dir


def add_routes(app: web.Application) -> None:
    """Register every route on `app`."""
    app.add_routes(
        [
            web.get("/health", health.health, name="health"),
            web.get("/ready", health.ready, name="ready"),
            web.get("/openapi.json", openapi.document, name="openapi"),
            web.get("/metrics", metrics.metrics, name="metrics"),
            web.get(
                "/v1/account/{account}/oauth-token", oauth_token.oauth_token, name="oauth_token"
            ),
            web.post("/v1/account", accounts.create_account, name="account_create"),
            web.get("/v1/accounts", accounts.list_accounts, name="accounts_list"),
            web.get("/v1/account/{account}", accounts.get_account, name="account_get"),
            web.delete("/v1/account/{account}", accounts.delete_account, name="account_delete"),
            web.put(
                "/v1/account/{account}", ee_account_update.update_account, name="account_update"
            ),
            web.post(
                "/v1/account/{account}/refresh", accounts.refresh_account, name="account_refresh"
            ),
            web.post(
                "/v1/account/{account}/verify", accounts.verify_account, name="account_verify"
            ),
            web.post(
                "/v1/authentication/form",
                ee_form.authentication_form,
                name="authentication_form",
            ),
            web.get("/oauth/start", consent.open_link, name="oauth_start"),
            web.post("/oauth/start", consent.start_link, name="oauth_start_post"),
            web.get("/oauth/callback", consent.oauth_callback, name="oauth_callback"),
            web.get("/oauth", consent.oauth_callback, name="oauth_callback_ee"),
            web.get("/v1/oauth2", apps.list_apps, name="apps_list"),
            web.post("/v1/oauth2", apps.create_app_route, name="app_create"),
            web.get("/v1/oauth2/{app}", apps.get_app, name="app_get"),
            web.put("/v1/oauth2/{app}", apps.update_app, name="app_update"),
            web.delete("/v1/oauth2/{app}", apps.delete_app, name="app_delete"),
            web.post("/v1/oauth2/{app}/verify", ee_verify.verify_app, name="app_verify"),
            web.post(
                "/v1/oauth2/{app}/credentials/promote",
                apps.promote_credentials,
                name="app_credentials_promote",
            ),
            web.get("/v1/settings", settings.get_settings, name="settings_get"),
            web.put("/v1/settings", settings.put_settings, name="settings_put"),
            web.post("/v1/settings", settings.post_settings_ee, name="settings_post"),
            web.post("/v1/settings/webhook-secret", webhooks.rotate_secret, name="webhook_secret"),
            web.get("/v1/webhooks/deliveries", webhooks.list_deliveries, name="webhook_deliveries"),
            web.post(
                "/v1/webhooks/deliveries/{id}/redeliver",
                webhooks.redeliver,
                name="webhook_redeliver",
            ),
            web.post("/v1/webhooks/test", webhooks.send_test, name="webhook_test"),
            web.get("/v1/audit", audit.list_audit, name="audit_list"),
            web.get("/v1/tokens", ee_tokens.list_tokens, name="tokens_list"),
            web.post("/v1/tokens", ee_tokens.create_token, name="token_create"),
            web.get("/v1/tokens/{token}", ee_tokens.get_token, name="token_get"),
            web.delete("/v1/tokens/{token}", ee_tokens.delete_token, name="token_delete"),
            web.get(
                "/v1/tokens/account/{account}", ee_tokens.account_tokens, name="tokens_account"
            ),
            web.post("/v1/token", ee_tokens.create_token, name="token_create_deprecated"),
            web.delete(
                "/v1/token/{token}",
                ee_tokens.delete_token_by_value,
                name="token_delete_deprecated",
            ),
        ]
    )
    app.add_routes(admin_routes(templates_dir() / "admin" / "static"))
