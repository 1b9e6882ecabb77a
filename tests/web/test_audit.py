"""GET /v1/audit and what it shows: token answers, operator actions, filters, paging, scope."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.audit import TOKEN_ISSUED
from service.config import Config
from service.core import Core
from service.store.embedded import RedisProcess
from service.web.appkeys import CORE, METRICS
from tests.conftest import make_token
from tests.support.idp import Idp
from tests.support.logs import logged_lines
from tests.test_audit import entries

Client = TestClient[web.Request, web.Application]
Importer = Callable[..., Awaitable[dict[str, Any]]]
PAST = "2020-01-01T00:00:00.000Z"


async def audit(client: Client, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    """GET /v1/audit with `query`; asserts 200 and returns the body."""
    await client.app[CORE].audit.flush()
    resp = await client.get("/v1/audit", params=query, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    assert resp.headers["Cache-Control"] == "no-store"
    return body  # type: ignore[no-any-return]


async def token_id(core: Core, headers: dict[str, str]) -> str:
    """The id of the API token in `headers`."""
    for token in await core.tokens.all():
        if token.description == "test" and "*" in token.scopes:
            return token.id
    raise AssertionError("no test token")


async def test_token_answers_are_recorded_with_cache_or_refresh(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    core: Core,
    idp: Idp,
) -> None:
    """Each token answer is recorded: account, API token, client, request id, cache/refresh."""
    await import_account(expires=PAST)
    refreshed = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert (await refreshed.json())["cached"] is False
    cached = await client.get("/v1/account/example/oauth-token", headers=admin)
    assert (await cached.json())["cached"] is True
    body = await audit(client, admin, account="example", action=TOKEN_ISSUED)
    newest, oldest = body["records"]
    tid = await token_id(core, admin)
    assert newest["source"] == "cache" and oldest["source"] == "refresh"
    assert "resource" not in newest and "resource" not in oldest  # the account's own token
    assert newest["requestId"] == cached.headers["X-Request-Id"]
    assert oldest["requestId"] == refreshed.headers["X-Request-Id"]
    for record in (newest, oldest):
        assert record["account"] == "example" and record["apiToken"] == tid
        assert record["apiTokenDescription"] == "test" and record["client"] == "127.0.0.1"
        assert record["time"].endswith("Z") and record["actor"] == f"apitoken:{tid}"
    assert body["next"] is None


async def test_operator_actions_over_the_api_are_recorded(
    client: Client, admin: dict[str, str], oidc_app: str, import_account: Importer, core: Core
) -> None:
    """App, account, settings, API token and webhook-secret changes are recorded with who."""
    await import_account()
    resp = await client.put(f"/v1/oauth2/{oidc_app}", json={"name": "Renamed"}, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await client.put("/v1/settings", json={"webhooksEnabled": False}, headers=admin)
    assert resp.status == 200, await resp.text()
    resp = await client.post("/v1/settings/webhook-secret", headers=admin)
    assert resp.status == 200, await resp.text()
    created = await client.post("/v1/tokens", json={"scopes": ["api"]}, headers=admin)
    new_id = (await created.json())["id"]
    resp = await client.delete(f"/v1/tokens/{new_id}", headers=admin)
    assert resp.status == 200
    refused = await client.put("/v1/oauth2/nope", json={"name": "x"}, headers=admin)
    assert refused.status == 404  # a change that did not happen is not an action
    records = (await audit(client, admin))["records"]
    actions = [(r["action"], r.get("app") or r.get("account") or r.get("target")) for r in records]
    assert actions == [
        ("api_token.delete", new_id),
        ("api_token.create", new_id),
        ("webhook_secret.rotate", None),
        ("settings.update", None),
        ("app.update", oidc_app),
        ("account.create", "example"),
    ]
    tid = await token_id(core, admin)
    assert all(r["via"] == "api" and r["actor"] == f"apitoken:{tid}" for r in records)
    assert all(r["status"] == 200 and r["client"] == "127.0.0.1" for r in records)


async def test_filters_and_cursor_paging(client: Client, admin: dict[str, str], core: Core) -> None:
    """Filters narrow the records; cursor pages cover every record once, newest first."""
    for n in range(23):
        core.audit.token_answer(
            account=f"acct-{n % 5}",
            api_token=("t-even" if n % 2 == 0 else "t-odd", None),
            client="192.0.2.1",
            request_id=f"r{n}",
            source="cache",
        )
    seen: list[str] = []
    times: list[str] = []
    cursor: str | None = None
    while True:
        query = {"limit": 4, **({"cursor": cursor} if cursor else {})}
        body = await audit(client, admin, **query)
        assert len(body["records"]) <= 4
        seen += [r["requestId"] for r in body["records"]]
        times += [r["time"] for r in body["records"]]
        cursor = body["next"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(f"r{n}" for n in range(23))  # each once
    window = timedelta(milliseconds=core.config.audit_flush_ms)
    stamps = [datetime.fromisoformat(t.replace("Z", "+00:00")) for t in times]
    # newest first by flush: one flush's records (at most a flush interval apart) by partition
    assert all(b <= a + window for a, b in itertools.pairwise(stamps)), times
    by_account = await audit(client, admin, account="acct-2")
    assert [r["requestId"] for r in by_account["records"]] == ["r22", "r17", "r12", "r7", "r2"]
    by_token = await audit(client, admin, token="t-odd", limit=50)
    assert len(by_token["records"]) == 11
    assert {r["apiToken"] for r in by_token["records"]} == {"t-odd"}
    later = await audit(client, admin, to="2000-01-01T00:00:00Z")
    assert later["records"] == []
    recent = await audit(client, admin, **{"from": "2000-01-01T00:00:00Z", "action": "app.create"})
    assert recent["records"] == []


async def test_needs_the_audit_scope(client: Client, core: Core) -> None:
    """Only a token with the `audit` scope (or `*`) reads the trail; others get 403 Forbidden."""
    for scopes in (("api",), ("oauth-tokens", "metrics")):
        token = await make_token(core, *scopes)
        resp = await client.get("/v1/audit", headers={"Authorization": f"Bearer {token}"})
        body = await resp.json()
        assert resp.status == 403 and body["code"] == "Forbidden", body
        assert "audit" in body["message"]
    reader = await make_token(core, "audit")
    resp = await client.get("/v1/audit", headers={"Authorization": f"Bearer {reader}"})
    assert resp.status == 200


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"cursor": "nonsense"}, "InvalidCursor"),
        ({"from": "yesterday"}, "InvalidInput"),
        ({"limit": "0"}, "InvalidInput"),
        ({"account": "no/slash"}, "InvalidAccountId"),
        ({"page": "1"}, "UnknownQueryParameter"),
        ({"account": ""}, "InvalidAccountId"),
        ({"cursor": ""}, "InvalidCursor"),
        ({"action": "2\u00dcB\u00ae\x00\u008c"}, "InvalidInput"),
    ],
)
async def test_bad_query_is_400(
    client: Client, admin: dict[str, str], query: dict[str, str], code: str
) -> None:
    """A malformed filter or cursor is 400 with its stable code."""
    resp = await client.get("/v1/audit", params=query, headers=admin)
    body = await resp.json()
    assert resp.status == 400 and body["code"] == code, body


async def test_buffered_answers_are_written_at_shutdown(
    make_client: Callable[..., Awaitable[Client]],
    config: Config,
    redis: Redis,
    import_account: Importer,
    admin: dict[str, str],
    enabled: None,
) -> None:
    """Token-answer records still in the buffer are written when the app stops."""
    await import_account()
    slow = await make_client(dataclasses.replace(config, audit_flush_ms=60_000))
    resp = await slow.get("/v1/account/example/oauth-token", headers=admin)
    assert resp.status == 200
    assert slow.app[CORE].audit.pending == 1
    await slow.close()
    found = []
    for partition in range(config.audit_partitions):
        found += await entries(redis, slow.app[CORE].keys.audit(partition))
    assert any('"token.issued"' in fields["r"] for _, fields in found)


async def test_no_secret_in_records_or_audit_lines(
    client: Client,
    admin: dict[str, str],
    import_account: Importer,
    enabled: None,
    redis: Redis,
    idp: Idp,
) -> None:
    """No token, secret or password is in an audit record (Redis scan) or an audit log line."""
    with logged_lines() as lines:
        minted = await import_account(expires=PAST)
        answer = await (await client.get("/v1/account/example/oauth-token", headers=admin)).json()
        created = await (
            await client.post("/v1/tokens", json={"scopes": ["api"]}, headers=admin)
        ).json()
        rotated = await (await client.post("/v1/settings/webhook-secret", headers=admin)).json()
        await client.delete(f"/v1/token/{created['token']}", headers=admin)
        await client.app[CORE].audit.flush()
    secrets = [
        minted["access_token"],
        minted["refresh_token"],
        answer["accessToken"],
        created["token"],
        admin["Authorization"].split()[1],
        idp.client_secret,
        *[value for value in rotated.values() if isinstance(value, str) and "whsec" in value],
    ]
    stored = ""
    async for key in redis.scan_iter(match="*audit*"):
        stored += "".join(fields["r"] for _, fields in await entries(redis, key))
    audit_lines = lines.events("audit")
    assert stored and len(audit_lines) >= 5, lines.text[:2000]
    assert any(line.get("action") == "api_token.delete" for line in audit_lines)
    for secret in secrets:
        assert secret not in stored, "a secret is in an audit record"
        assert secret not in lines.text, "a secret is in a log line"


async def test_a_failed_flush_shows_in_the_metrics(
    make_client: Callable[..., Awaitable[Client]], config: Config, tmp_path: Path
) -> None:
    """The web app counts a flush that Redis refused in tokenbroker_audit_flush_failures."""
    store = RedisProcess(tmp_path / "redis")
    await asyncio.to_thread(store.start)
    try:
        app = await make_client(dataclasses.replace(config, redis_url=store.url), live=False)
        await asyncio.to_thread(store.stop)
        core = app.app[CORE]
        core.audit.token_answer(
            account="a", api_token=("t", None), client="192.0.2.1", request_id="r", source="cache"
        )
        assert await core.audit.flush() is False and core.audit.pending == 1
        text = app.app[METRICS].render().decode()
        assert "tokenbroker_audit_flush_failures_total 1.0" in text, text
        await app.close()  # the shutdown flush fails too, and is survived
    finally:
        await asyncio.to_thread(store.stop)


@pytest.mark.parametrize(
    "query",
    [
        {"account": "rHqNqAx-QQOq", "cursor": "000-0-0000-0", "from": "2000-01-01T00:00:00Z"},
        {"cursor": "8409704-49825-0-09141718", "from": "2583-02-02T11:32:05.316036Z"},
        {"to": "1343-02-05T09:13:00.77+20:37", "action": "admin.logout"},
        {"cursor": "999999999999999-0-9999-0"},
    ],
)
async def test_odd_but_valid_queries_answer(
    client: Client, admin: dict[str, str], query: dict[str, str]
) -> None:
    """Far times, a cursor from nowhere, an action nobody records: an empty page, not a 500."""
    body = await audit(client, admin, **query)
    assert body["records"] == []
