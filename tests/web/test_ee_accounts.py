"""EmailEngine's account API replayed from the transcript: status and shape request by request."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.core import Core
from tests.conftest import make_token
from tests.support.ee_api_transcript import entry, shape_differences

Client = TestClient[web.Request, web.Application]
IMPORTS = [
    "account.import.a-gmail-1",
    "account.import.a-gmail-2",
    "account.import.a-gmail-3",
    "account.import.a-gmail-4-generated",
    "account.import.a-outlook-1",
    "account.import.a-outlook-2-shared",
    "account.import.a-mailru-1",
    "account.import.duplicate-oauth2-user-accepted",
]
# The recorded accounts had IMAP workers; ours have none: their counters and IMAP errors differ.
# baseScopes is the app's (EmailEngine's scope presets, added with its app types).
SKIP = frozenset(
    {"counters.events", "lastError", "accounts[].counters.events", "accounts[].lastError"}
    | {"baseScopes"}
)


def with_app(body: Any, app: str) -> Any:
    """The recorded request body with its app id replaced by ours."""
    if isinstance(body, dict) and isinstance(body.get("oauth2"), dict):
        return {**body, "oauth2": {**body["oauth2"], "provider": app}}
    return body


async def replay(client: Client, name: str, token: str | None, app: str = "") -> Any:
    """Send one recorded request (its app swapped for ours); assert the recorded status."""
    recorded = entry(name)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    resp = await client.request(
        recorded["method"],
        recorded["path"],
        params=recorded["query"],
        json=with_app(recorded["requestBody"], app),
        headers=headers,
    )
    body = await resp.json()
    assert resp.status == recorded["status"], (name, body)
    return body


async def check(client: Client, name: str, token: str | None, app: str = "") -> Any:
    """Replay `name` and assert our answer has the recorded shape."""
    body = await replay(client, name, token, app)
    assert shape_differences(entry(name)["responseBody"], body, skip=SKIP) == [], name
    return body


@pytest.fixture
async def root(core: Core) -> str:
    """An operator (`*`) API token."""
    return await make_token(core, "*")


async def imported(client: Client, root: str, app: str) -> None:
    """Import the recorded accounts onto our test app."""
    for name in IMPORTS:
        await check(client, name, root, app)


@pytest.mark.parametrize("name", ["auth.missing", "auth.unknown-token"])
async def test_unauthenticated_answers(client: Client, name: str) -> None:
    """No credentials and an unknown token get EmailEngine's 401 bodies."""
    token = None if name == "auth.missing" else "0" * 64
    body = await check(client, name, token)
    assert body["message"] == entry(name)["responseBody"]["message"]


async def test_unknown_access_token_parameter(client: Client) -> None:
    """An unknown ?access_token= is 401 "Bad token", as recorded."""
    body = await check(client, "auth.query-token-missing", None)
    assert body["message"] == "Bad token"


async def test_imports_answer_account_and_state(client: Client, root: str, oidc_app: str) -> None:
    """Every recorded import answers {account, state}; `account: null` gets a generated id."""
    await imported(client, root, oidc_app)
    body = await check(client, "account.import.a-gmail-4-generated", root, oidc_app)
    assert len(body["account"]) == 16 and body["account"].isalnum()


@pytest.mark.parametrize(
    "name", ["account.get.a-gmail-1", "account.get.a-outlook-2-shared", "account.get.missing"]
)
async def test_get_account(client: Client, root: str, oidc_app: str, name: str) -> None:
    """GET /v1/account/{id} answers EmailEngine's keys (delegatedUser too), or its 404."""
    await imported(client, root, oidc_app)
    body = await check(client, name, root)
    if name == "account.get.a-outlook-2-shared":
        assert body["oauth2"]["auth"]["delegatedUser"] == "a.shared@fixture-a.example.com"
        assert body["email"] == "a.shared@fixture-a.example.com"


@pytest.mark.parametrize(
    "name",
    [
        "accounts.list.default",
        "accounts.list.page0-size4",
        "accounts.list.page1-size4",
        "accounts.list.page-beyond",
        "accounts.list.state-connected",
        "accounts.list.state-init",
        "accounts.list.state-disconnected",
        "accounts.list.query",
        "accounts.list.error.bad-state",
    ],
)
async def test_list_accounts(client: Client, root: str, oidc_app: str, name: str) -> None:
    """GET /v1/accounts with page, pageSize, state and query: the recorded status and keys."""
    await imported(client, root, oidc_app)
    body = await check(client, name, root)
    if name == "accounts.list.query":
        found = {a["account"] for a in body["accounts"]}  # a word's prefix: a-outlook-*
        assert body["query"] == "outlook" and found == {"a-outlook-1", "a-outlook-2-shared"}
    if name == "accounts.list.page0-size4":
        assert body["pages"] == 2 and len(body["accounts"]) == 4


async def test_unknown_query_parameter_is_refused(client: Client, root: str) -> None:
    """An unknown query parameter is 400 UnknownQueryParameter, never ignored."""
    resp = await client.get(
        "/v1/accounts?status=all&bogus=1", headers={"Authorization": f"Bearer {root}"}
    )
    body = await resp.json()
    assert resp.status == 400 and body["code"] == "UnknownQueryParameter"


@pytest.mark.parametrize(
    "name",
    [
        "account.delete.without-revoke",
        "account.delete.with-revoke",
        "account.delete.again",
        "account.delete.error.bad-revoke",
    ],
)
async def test_delete_account(client: Client, root: str, oidc_app: str, name: str) -> None:
    """DELETE with and without ?revoke=: the recorded answers; revoking only when asked."""
    for imp in ("account.import.a-del-plain", "account.import.a-del-revoke"):
        await check(client, imp, root, oidc_app)
    if name == "account.delete.again":
        await replay(client, "account.delete.without-revoke", root)
    body = await check(client, name, root)
    if name == "account.delete.without-revoke":
        assert body["revoked"] is False and "reason" not in body


async def test_emailengine_callback_path_is_ours(client: Client) -> None:
    """GET /oauth is the consent callback as /oauth/callback: a forged state is InvalidState."""
    for path in ("/oauth", "/oauth/callback"):
        resp = await client.get(f"{path}?code=x&state=eyJhbGciOiJub25lIn0.e30.")
        assert resp.status == 400 and "InvalidState" in await resp.text(), path
