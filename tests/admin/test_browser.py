"""End to end in a real headless Chromium: the article's steps on the settings pages."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from service.web.appkeys import CONFIG
from tests.support.admin import PASSWORD
from tests.support.browser import chromium, click, fill, find, submit, wait_text
from tests.support.idp import Idp

Client = TestClient[web.Request, web.Application]


def set_up(driver: webdriver.Chrome, base: str, idp: Idp, shots: Path) -> str:
    """Log in, add the app, enable the endpoint, create a token (returned), connect an account."""
    shots.mkdir(parents=True, exist_ok=True)
    driver.get(f"{base}/admin/")
    fill(driver, {"#password": PASSWORD})
    submit(driver, "#login")
    wait_text(driver, "h1", "Dashboard")
    driver.get(f"{base}/admin/apps/new")
    Select(find(driver, "#provider")).select_by_value("oidc")  # the type first, then its form
    submit(driver, "#choose-provider")
    wait_text(driver, "#kind", "oidc")
    fill(driver, {"#app-id": "idp", "#client-id": idp.client_id})
    fill(driver, {"#client-secret": idp.client_secret, "#issuer": idp.issuer})
    fill(driver, {"#additional-scopes": "mail.read"})
    submit(driver, "#save-app")
    wait_text(driver, "#flash", "App idp saved.")
    driver.save_screenshot(str(shots / "app.png"))
    driver.get(f"{base}/admin/settings")
    if not find(driver, "#enable-token-api").is_selected():
        click(driver, "#enable-token-api")
    submit(driver, "#save-settings")
    wait_text(driver, "#flash", "Settings saved.")
    assert find(driver, "#enable-token-api").is_selected()
    driver.get(f"{base}/admin/tokens")
    click(driver, "#scope-oauth-tokens")
    fill(driver, {"#token-description": "browser test"})
    submit(driver, "#create-token")
    token = find(driver, "#new-token").text
    driver.get(f"{base}/admin/tokens")
    wait_text(driver, "#tokens", "browser test")
    assert token not in driver.page_source  # shown once
    connect(driver, base)
    driver.save_screenshot(str(shots / "accounts.png"))
    driver.get(f"{base}/admin/settings")
    driver.set_window_size(390, 1100)  # a phone: the pages must still read well
    find(driver, "#enable-token-api")
    driver.save_screenshot(str(shots / "settings-phone.png"))
    driver.set_window_size(1280, 900)
    return token


def connect(driver: webdriver.Chrome, base: str) -> None:
    """Connect an account through the provider's real login and consent pages."""
    driver.get(f"{base}/admin/accounts")
    fill(driver, {"#connect-account": "browser-acct"})
    Select(find(driver, "#connect-app")).select_by_value("idp")
    submit(driver, "#connect")
    fill(driver, {"input[name=login]": "alice", "input[name=password]": "any"})
    submit(driver, "button[type=submit]")
    submit(driver, "button[type=submit]")  # the consent page
    wait_text(driver, "#connected", "The account is connected.")
    wait_text(driver, "#account-status", "active")
    driver.get(f"{base}/admin/accounts?q=browser")
    wait_text(driver, "#accounts", "browser-acct")


def tear_down(driver: webdriver.Chrome, base: str) -> None:
    """Revoke the API token and log out."""
    driver.get(f"{base}/admin/tokens")
    submit(driver, "#tokens button.danger")
    wait_text(driver, "#flash", "revoked")
    submit(driver, "#logout")
    wait_text(driver, "main", "You are logged out.")
    driver.get(f"{base}/admin/")
    find(driver, "#password")
    assert driver.find_elements(By.CSS_SELECTOR, "#logout") == []


async def test_operator_walkthrough(site: Client, site_idp: Idp, tmp_path: Path) -> None:
    """The article's steps in a browser, at the real provider, then revoke and log out.

    Log in, add an app with additional scopes, enable the token endpoint, create a token,
    connect an account at the provider, fetch its token over the API, revoke, log out.
    """
    base = site.app[CONFIG].base_url
    shots = Path(os.environ.get("TOKENBROKER_SCREENSHOTS") or tmp_path / "screenshots")
    with chromium(tmp_path / "profile") as driver:
        token = await asyncio.to_thread(set_up, driver, base, site_idp, shots)
        bearer = {"Authorization": f"Bearer {token}"}
        resp = await site.get("/v1/account/browser-acct/oauth-token", headers=bearer)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["app"] == "idp" and "mail.read" in body["registeredScopes"]
        await asyncio.to_thread(tear_down, driver, base)
    resp = await site.get("/v1/account/browser-acct/oauth-token", headers=bearer)
    assert resp.status == 401
