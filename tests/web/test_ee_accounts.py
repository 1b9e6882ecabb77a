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
# baseScopes is null for the oidc test app (no presets; the conformance test has EE's apps).
# API tokens: no client IP is kept, and last use is written in batches (so null at first).
SKIP = frozenset(
    {"counters.events", "lastError", "accounts[].counters.events", "accounts[].lastError"}
    | {"baseScopes", "tokens[].access.time", "tokens[].access.ip", "tokens[].remoteAddress"}
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


@pytest.mark.parametrize(
    "name",
    [
        "settings.get.initial",
        "settings.post",
        "settings.get.after",
        "settings.get.eventTypes",
        "settings.get.unknown-key",
        "settings.post.invalid",
        "settings.post.final-webhook-url",
    ],
)
async def test_settings(client: Client, root: str, name: str) -> None:
    """GET with key selection and POST answering {updated}: the recorded status and shape."""
    post = entry("settings.post")["requestBody"]
    ours = {k: v for k, v in post.items() if k != "serviceSecret"}  # the EE-webhooks setting
    ours["serviceUrl"] = "http://127.0.0.1:8080"  # TOKENBROKER_BASE_URL, read-only here
    ours["notifyHeaders"] = []  # message webhooks: none here, only [] is taken
    headers = {"Authorization": f"Bearer {root}"}
    if name != "settings.get.initial":
        resp = await client.post("/v1/settings", json=ours, headers=headers)
        assert await resp.json() == {"updated": list(ours)}
    if name in ("settings.post", "settings.post.final-webhook-url", "settings.post.invalid"):
        body = await replay_settings(client, name, headers)
    else:
        query = {k: v for k, v in entry(name)["query"].items() if k != "serviceSecret"}
        resp = await client.get("/v1/settings", params=query, headers=headers)
        assert resp.status == entry(name)["status"]
        body = await resp.json()
    recorded = {k: v for k, v in entry(name)["responseBody"].items() if k != "serviceSecret"}
    skip = frozenset({"webhooks"}) if name == "settings.get.initial" else frozenset()
    assert shape_differences(recorded, body, skip=skip) == [], name
    if name == "settings.get.after":
        assert body["webhooksCustomHeaders"][0]["value"] != "hdr-secret"  # masked


async def replay_settings(client: Client, name: str, headers: dict[str, str]) -> Any:
    """POST a recorded settings body (serviceSecret, serviceUrl, notifyHeaders as ours)."""
    sent = {k: v for k, v in entry(name)["requestBody"].items() if k != "serviceSecret"}
    if "serviceUrl" in sent:
        sent["serviceUrl"], sent["notifyHeaders"] = "http://127.0.0.1:8080", []
    resp = await client.post("/v1/settings", json=sent, headers=headers)
    assert resp.status == entry(name)["status"], await resp.text()
    return await resp.json()


async def test_api_tokens_over_http(client: Client, root: str, oidc_app: str) -> None:
    """/v1/tokens and the deprecated /v1/token routes: recorded statuses and shapes."""
    await check(client, "account.import.a-gmail-1", root, oidc_app)
    await check(client, "account.import.a-outlook-1", root, oidc_app)
    await check(client, "tokens.list.initial", root)
    bound = await check(client, "tokens.create.account-bound", root)
    legacy = await check(client, "token.create.deprecated-path", root)
    await check(client, "tokens.create.error.missing-account", root)
    await check(client, "tokens.list.all", root)
    listed = await check(client, "tokens.list.by-account", root)
    assert [t["id"] for t in listed["tokens"]] == [bound["id"]]
    await check(client, "tokens.list.deprecated-account-path", root)
    headers = {"Authorization": f"Bearer {root}"}
    shown = await (await client.get(f"/v1/tokens/{bound['id']}", headers=headers)).json()
    assert (
        shape_differences(
            entry("tokens.get.by-id")["responseBody"],
            shown,
            skip=frozenset({"metadata", "remoteAddress", "permissions"}),
        )
        == []
    )
    assert bound["token"] not in str(shown) and bound["token"] not in str(listed)
    assert (await client.get("/v1/tokens/" + "f" * 64, headers=headers)).status == 404
    deleted = await client.delete(f"/v1/tokens/{bound['id']}", headers=headers)
    assert await deleted.json() == {"deleted": True}
    again = await client.delete(f"/v1/tokens/{bound['id']}", headers=headers)
    assert await again.json() == {"deleted": False}
    by_value = await client.delete(f"/v1/token/{legacy['token']}", headers=headers)
    assert await by_value.json() == {"deleted": True}
    after = await client.get("/v1/accounts", headers={"Authorization": f"Bearer {legacy['token']}"})
    assert after.status == 401 and (await after.json())["message"] == "Bad token"


async def test_api_token_routes_need_operator_authority(
    client: Client, core: Core, oidc_app: str
) -> None:
    """An `api` token, or a `*` token bound to an account, cannot list or create tokens."""
    for token in (await make_token(core, "api"), await make_token(core, "*", account="acct")):
        resp = await client.get("/v1/tokens", headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 403


@pytest.mark.parametrize(
    "name",
    [
        "account.update.error.partial-oauth2-without-auth",
        "account.update.partial-oauth2-refresh-token",
        "account.update.full-oauth2-replace",
        "account.update.name-only",
        "account.update.missing",
        "account.update.error.bad-expires",
    ],
)
async def test_update_account(
    client: Client, root: str, core: Core, oidc_app: str, name: str
) -> None:
    """PUT /v1/account/{id}: the recorded answers; partial merges, full replaces the grant."""
    await imported(client, root, oidc_app)
    before = await core.accounts.get(entry(name)["path"].rsplit("/", 1)[1])
    await check(client, name, root, oidc_app)
    if name == "account.update.partial-oauth2-refresh-token":
        after = await core.accounts.require("a-outlook-1")
        assert core.accounts.refresh_token(after) == "RT-A-outlook-1-v2"
        assert before is not None and after.grant_gen == before.grant_gen + 1
        assert core.accounts.access_token(after) == "AT-A-outlook-1"  # merged, kept
        assert after.name == "Fixture A Outlook one (renamed)"
    if name == "account.update.full-oauth2-replace":
        after = await core.accounts.require("a-gmail-2")
        assert core.accounts.access_token(after) == "AT-A-gmail-2-v2"
    if name == "account.update.name-only":
        after = await core.accounts.require("a-gmail-3")
        assert after.name == "Fixture A Gmail three (API, renamed)"
        assert before is not None and after.grant_gen == before.grant_gen  # no new grant
