"""The /admin routes: every settings page, each named admin_* (they are not the JSON API)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from service.web.admin import (
    accounts,
    apps,
    audit,
    auth,
    dashboard,
    deliveries,
    settings,
    tokens,
)

A = "/admin"


def admin_routes(static_dir: Path) -> list[web.AbstractRouteDef]:
    """The settings pages' routes and their stylesheet."""
    return [
        web.get(A, dashboard.admin_root, name="admin_root"),
        web.get(f"{A}/", dashboard.dashboard, name="admin_dashboard"),
        web.get(f"{A}/login", auth.login_form, name="admin_login_form"),
        web.post(f"{A}/login", auth.login, name="admin_login"),
        web.post(f"{A}/logout", auth.logout, name="admin_logout"),
        web.get(f"{A}/apps", apps.list_apps, name="admin_apps"),
        web.get(f"{A}/apps/new", apps.new_app, name="admin_app_new"),
        web.post(f"{A}/apps/new", apps.create_app, name="admin_app_create"),
        web.get(f"{A}/apps/{{app}}", apps.edit_app, name="admin_app"),
        web.post(f"{A}/apps/{{app}}", apps.update_app, name="admin_app_update"),
        web.post(
            f"{A}/apps/{{app}}/credentials/promote",
            apps.promote_credentials,
            name="admin_app_promote",
        ),
        web.get(f"{A}/apps/{{app}}/delete", apps.confirm_delete_app, name="admin_app_confirm"),
        web.post(f"{A}/apps/{{app}}/delete", apps.delete_app, name="admin_app_delete"),
        web.get(f"{A}/accounts", accounts.list_accounts, name="admin_accounts"),
        web.post(f"{A}/accounts/connect", accounts.connect, name="admin_account_connect"),
        web.get(f"{A}/accounts/{{account}}", accounts.show_account, name="admin_account"),
        web.post(
            f"{A}/accounts/{{account}}/refresh",
            accounts.refresh_account,
            name="admin_account_refresh",
        ),
        web.post(
            f"{A}/accounts/{{account}}/verify",
            accounts.verify_account,
            name="admin_account_verify",
        ),
        web.get(
            f"{A}/accounts/{{account}}/delete",
            accounts.confirm_delete_account,
            name="admin_account_confirm",
        ),
        web.post(
            f"{A}/accounts/{{account}}/delete",
            accounts.delete_account,
            name="admin_account_delete",
        ),
        web.get(f"{A}/settings", settings.show_settings, name="admin_settings"),
        web.post(f"{A}/settings", settings.save_settings, name="admin_settings_save"),
        web.post(f"{A}/settings/webhook-secret", settings.rotate_secret, name="admin_secret"),
        web.post(f"{A}/settings/webhook-test", settings.send_test, name="admin_webhook_test"),
        web.get(f"{A}/tokens", tokens.list_tokens, name="admin_tokens"),
        web.post(f"{A}/tokens", tokens.create_token, name="admin_token_create"),
        web.post(f"{A}/tokens/{{id}}/revoke", tokens.revoke_token, name="admin_token_revoke"),
        web.get(f"{A}/deliveries", deliveries.list_deliveries, name="admin_deliveries"),
        web.post(f"{A}/deliveries/{{id}}/redeliver", deliveries.redeliver, name="admin_redeliver"),
        web.get(f"{A}/audit", audit.list_audit, name="admin_audit"),
        web.static(f"{A}/static", static_dir, name="admin_static"),
    ]
