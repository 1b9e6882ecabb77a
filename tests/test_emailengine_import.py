"""`tokenbroker import --from-emailengine`: the recorded EmailEngine Redis comes over, read only."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from redis.asyncio import Redis

from service.account_record import AccountWrite
from service.apitokens import raw_digest
from service.clock import iso
from service.core import Core
from service.ops.emailengine_plan import target_kind
from service.providers import GMAIL_PRESETS, SERVICE_KINDS
from service.store.embedded import RedisProcess
from service.webhooks.headers import WebhookHeaders
from service.webhooks.service_secret import ServiceSecret
from tests.support.emailengine import (
    EE_DB,
    FIXTURES,
    MANIFEST,
    dumps,
    load_dump,
    put_ee_account,
    put_ee_app,
    snapshot,
)
from tests.support.idp import Idp
from tests.test_cli import Result, base_env, run
from tests.test_grants import TENANT


@pytest.fixture
async def ee_redis(redis_server: RedisProcess, redis: Redis) -> Any:
    """EmailEngine's recorded Redis, loaded into database 1 (the `redis` fixture emptied it)."""
    client = Redis.from_url(redis_server.url[:-1] + str(EE_DB), decode_responses=False)
    await load_dump(client, FIXTURES / "redis-dump-A.json")
    yield client
    await client.aclose()


async def ee_import(
    redis_server: RedisProcess, tmp_path: Path, *args: str, secret: str | None = None
) -> Result:
    """Run `tokenbroker import --from-emailengine URL ARGS` with EENGINE_SECRET set."""
    env = {
        **base_env(redis_server.url),
        "EENGINE_SECRET": MANIFEST["eengineSecret"] if secret is None else secret,
        "TOKENBROKER_ALLOW_PRIVATE_URLS": "true",  # the recorded webhooks URL is on 127.0.0.1
    }
    url = redis_server.url[:-1] + str(EE_DB)
    return await run("import", "--from-emailengine", url, "--json", *args, env=env, cwd=tmp_path)


def report(result: Result) -> dict[str, Any]:
    """The JSON report of a run (exit code checked)."""
    assert result.code == 0, result.stderr
    return cast(dict[str, Any], orjson.loads(result.stdout))


def expected_accounts() -> dict[str, dict[str, Any]]:
    """Manifest accounts an import must bring over (their app's type is supported)."""
    apps = {a["id"]: a for a in MANIFEST["apps"]}
    return {
        a["account"]: a
        for a in MANIFEST["accounts"]
        if a.get("appId") in apps
        and target_kind(apps[a["appId"]]["provider"]) is not None
        and (a.get("refreshToken") or apps[a["appId"]]["provider"] in SERVICE_KINDS)
    }


def test_raw_digest_is_emailengine_token_id() -> None:
    """The raw-bytes digest of each manifest token is EmailEngine's token id."""
    for token in MANIFEST["apiTokens"]:
        assert raw_digest(token["token"]) == token["id"]
    assert raw_digest("not-hex") is None


@pytest.mark.timeout(120)
async def test_import_from_emailengine(
    redis_server: RedisProcess,
    ee_redis: Redis,
    redis: Redis,
    client: TestClient[web.Request, web.Application],
    core: Core,
    tmp_path: Path,
) -> None:
    """Dry run, import, second run: manifest apps, accounts, tokens, settings; sources untouched."""
    before = (await dumps(ee_redis), await snapshot(ee_redis))
    ours = await snapshot(redis)  # the web app's own start-up keys (the search index mark)
    dry = report(await ee_import(redis_server, tmp_path, "--dry-run"))
    assert dry["dryRun"] is True
    assert await snapshot(redis) == ours  # a dry run writes nothing
    check_dry_run(dry)

    first = report(await ee_import(redis_server, tmp_path))
    wanted = expected_accounts()
    assert first["result"]["account imported"] == len(wanted)
    assert first["refused"] == []
    ours = await snapshot(redis)
    second = report(await ee_import(redis_server, tmp_path))
    assert "account imported" not in second["result"]
    assert "app imported" not in second["result"]
    assert second["result"].get("token imported") is None
    assert second["result"].get("setting imported") is None
    assert await snapshot(redis) == ours  # the second run changed nothing
    assert (await dumps(ee_redis), await snapshot(ee_redis)) == before  # only read

    await check_apps(core, set(dry["apps"]))
    await check_accounts(core, wanted)
    await check_settings(core)
    await check_tokens(client, wanted)


def check_dry_run(dry: dict[str, Any]) -> None:
    """The dry run names what comes over and why the rest cannot."""
    supported = {a["id"] for a in MANIFEST["apps"] if target_kind(a["provider"])}
    assert set(dry["apps"]) == supported
    assert set(dry["accounts"]) == set(expected_accounts())
    assert dry["strays"] == []  # a-del-revoke's leftover hash is outside ia:accounts
    assert "a-del-revoke" not in dry["accounts"]
    skipped = {(s["what"], s["id"]): s["reason"] for s in dry["notImported"]}
    assert "not an OAuth2 account" in skipped[("account", "a-imap-password-1")]
    assert "no longer exists" in skipped[("account", "a-orphan-1")]
    assert "a-mailru-1" in dry["accounts"]  # Mail.ru apps and accounts come over
    assert {a["provider"] for a in MANIFEST["apps"] if a["id"] in supported} >= {"mailRu"}
    for app in MANIFEST["apps"]:
        if app["id"] not in supported:
            assert app["provider"] in skipped[("app", app["id"])]
    assert ("setting", "serviceSecret") not in skipped  # EmailEngine-style webhooks keep it
    live = [t for t in MANIFEST["apiTokens"] if not t["deleted"]]
    assert sorted(dry["tokens"]) == sorted(t["id"][:16] for t in live)
    assert set(dry["settings"]) >= {"webhooks", "webhooksEnabled", "webhookEvents"}


async def check_apps(core: Core, ids: set[str]) -> None:
    """Each imported app has its id, kind, client id and (decrypted) client secret."""
    for app in MANIFEST["apps"]:
        if app["id"] not in ids:
            assert await core.apps.get(app["id"]) is None
            continue
        ours, plain = await core.apps.require(app["id"]), app["plaintext"]
        assert ours.provider == target_kind(app["provider"])
        assert ours.client_id == plain.get("clientId", "")
        assert core.apps.client_secret(ours) == plain.get("clientSecret")
        assert core.apps.service_key(ours) == plain.get("serviceKey")
        assert ours.fields["name"] == plain["name"]
        assert ours.additional_scopes == plain.get("extraScopes", [])
        for name in ("serviceClient", "serviceClientEmail", "baseScopes"):
            if name in plain and app["provider"] != "outlookService":
                assert ours.fields[name] == plain[name]
        if app["provider"] == "outlookService":
            assert ours.fields["tenant"] == plain["authority"]
            assert ours.scopes == ["https://graph.microsoft.com/.default"]  # as EmailEngine


async def check_accounts(core: Core, wanted: dict[str, dict[str, Any]]) -> None:
    """Each imported account keeps its id, user, name, tokens and expiry."""
    for account_id, ee in wanted.items():
        ours = await core.accounts.require(account_id)
        assert ours.app == ee["appId"]
        assert ours.user == ee["oauth2User"]
        assert ours.name == ee["name"]
        if ee["refreshToken"] is None:  # a service-account app's mailbox
            assert ours.encrypted_refresh is None
        else:
            assert core.accounts.refresh_token(ours) == ee["refreshToken"]
        if ee.get("accessToken"):
            assert core.accounts.access_token(ours) == ee["accessToken"]
            assert ours.expires_at_ms is not None
            assert ours.expires_at_ms == _ms(ee["expires"])
        else:
            assert ours.encrypted_access is None


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


async def check_settings(core: Core) -> None:
    """The webhook settings, the serviceSecret and the oauth-token switch came over."""
    values = await core.settings.all()
    assert values["webhooks"] == MANIFEST["settingsDecrypted"]["webhooks"]
    assert values["webhooksEnabled"] is True
    assert values["webhookEvents"] == "*"
    assert values["enableOAuthTokensApi"] is True
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    assert await headers.values() == {"X-Api-Key": "hdr-secret"}
    secret = ServiceSecret(core.redis, core.keys, core.cipher)
    assert await secret.get() == MANIFEST["serviceSecret"]  # receivers verify as before


async def check_tokens(
    client: TestClient[web.Request, web.Application], wanted: dict[str, dict[str, Any]]
) -> None:
    """Manifest API tokens authenticate with their scopes and binding; deleted ones do not."""
    tokens = {t["label"]: t["token"] for t in MANIFEST["apiTokens"]}

    async def get(account: str, label: str) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {tokens[label]}"}
        async with client.get(f"/v1/account/{account}/oauth-token", headers=headers) as resp:
            return resp.status, await resp.json()

    for account_id, ee in wanted.items():
        if ee.get("accessToken") and _ms(ee["expires"]) > _ms("2029-01-01T00:00:00Z"):
            status, body = await get(account_id, "root")
            assert status == 200, body
            assert body["accessToken"] == ee["accessToken"]
    status, body = await get("a-gmail-1", "account:a-gmail-1")
    assert status == 200, body
    assert body["accessToken"] == "AT-A-gmail-1"
    assert (await get("a-outlook-1", "account:a-gmail-1"))[0] == 403
    assert (await get("a-gmail-1", "narrow"))[0] == 401  # deleted in EmailEngine
    assert (await get("a-gmail-1", "legacy"))[0] == 401


async def test_imported_token_lookup_only_after_a_native_miss(core: Core, redis: Redis) -> None:
    """A raw-bytes digest is accepted only for records marked imported, native ones stay."""
    ee = next(t for t in MANIFEST["apiTokens"] if t["label"] == "root")
    assert await core.tokens.find(ee["token"]) is None
    assert await core.tokens.import_raw(ee["id"], ["api"], None, "ee", 1) is True
    assert await core.tokens.import_raw(ee["id"], ["api"], None, "ee", 1) is False
    found = await core.tokens.find(ee["token"])
    assert found is not None and found.raw_bytes and found.scopes == ("api",)
    native, meta = await core.tokens.create(["api"], None, None, None, 1)
    assert (await core.tokens.find(native)) == meta
    # a native record found under a raw-bytes digest is not an imported token
    await redis.rename(
        core.keys.api_token(meta.digest), core.keys.api_token(raw_digest(native) or "")
    )
    assert await core.tokens.find(native) is None
    allowed = await core.token_service.authorize(ee["token"], "api", None)
    assert allowed.digest == ee["id"]


async def test_secret_missing_or_wrong(
    redis_server: RedisProcess, ee_redis: Redis, redis: Redis, tmp_path: Path
) -> None:
    """No EENGINE_SECRET (and no terminal) or a wrong one: a clear error, nothing written."""
    missing = await ee_import(redis_server, tmp_path, secret="")
    assert missing.code == 2 and "EENGINE_SECRET" in missing.stderr
    wrong = await ee_import(redis_server, tmp_path, secret="wrong-secret-value")
    assert wrong.code == 1 and "EENGINE_SECRET right?" in wrong.stderr
    assert "wrong-secret-value" not in wrong.stderr + wrong.stdout
    assert await redis.dbsize() <= 1  # at most the web app's search index mark


async def test_an_id_taken_here_is_refused_not_overwritten(
    redis_server: RedisProcess, ee_redis: Redis, core: Core, tmp_path: Path
) -> None:
    """An account id already used here on another app is refused (exit 1) and left alone."""
    app = await core.apps.create(
        {
            "id": "native",
            "provider": "oidc",
            "clientId": "c",
            "clientSecret": "s",
            "tokenUrl": "https://idp.test/token",
        },
        "2026-01-01T00:00:00.000Z",
    )
    write = AccountWrite(app=app.id, provider=app.provider, user="u", refresh_token="RT-native")
    await core.accounts.save("a-gmail-1", write, 0, 0, {})
    result = await ee_import(redis_server, tmp_path)
    assert result.code == 1
    body = orjson.loads(result.stdout)
    assert {"what": "account", "id": "a-gmail-1"}.items() <= body["refused"][0].items()
    kept = await core.accounts.require("a-gmail-1")
    assert kept.app == "native" and core.accounts.refresh_token(kept) == "RT-native"


@pytest.mark.timeout(120)
async def test_service_apps_import_and_mint_tokens(
    redis_server: RedisProcess,
    redis: Redis,
    client: TestClient[web.Request, web.Application],
    admin: dict[str, str],
    core: Core,
    idp: Idp,
    enabled: None,
    tmp_path: Path,
) -> None:
    """Service-account apps (gmailService, outlookService) and their mailboxes get tokens."""
    secret = MANIFEST["eengineSecret"]
    ee = Redis.from_url(redis_server.url[:-1] + str(EE_DB + 2), decode_responses=False)
    key_file = idp.service_account()
    gsvc = {
        "provider": "gmailService", "name": "Workspace", "serviceClient": key_file["client_id"],
        "serviceClientEmail": key_file["client_email"], "serviceKey": key_file["private_key"],
        "authMethod": "serviceKey", "baseScopes": "api", "enabled": False,
    }  # fmt: skip
    osvc = {
        "provider": "outlookService", "name": "Exchange", "clientId": idp.client_id,
        "clientSecret": idp.client_secret, "authority": TENANT, "cloud": "global",
    }  # fmt: skip
    url = redis_server.url[:-1] + str(EE_DB + 2)
    env = {**base_env(redis_server.url), "EENGINE_SECRET": secret}
    args = ("import", "--from-emailengine", url, "--json")
    try:
        await put_ee_app(ee, "EEGSVC", gsvc, secret)
        await put_ee_app(ee, "EEOSVC", osvc, secret)
        assert report(await run(*args, env=env, cwd=tmp_path))["refused"] == []
        now = iso(core.clock.now_ms())
        for app_id in ("EEGSVC", "EEOSVC"):  # the test provider stands in for Google, Microsoft
            app = await core.apps.require(app_id)  # endpoints change only while it has no accounts
            await core.apps.update(app, {"tokenUrl": idp.token_url}, now)
        await put_ee_account(ee, "g-box", "EEGSVC", "alice@example.test")
        await put_ee_account(ee, "o-box", "EEOSVC", "bob@example.test")
        dry = report(await run(*args, "--dry-run", env=env, cwd=tmp_path))
        assert dry["apps"] == ["EEGSVC", "EEOSVC"] and dry["accounts"] == ["g-box", "o-box"]
        assert report(await run(*args, env=env, cwd=tmp_path))["result"]["account imported"] == 2
    finally:
        await ee.flushdb()
        await ee.aclose()
    assert (await core.apps.require("EEGSVC")).scopes[0] == GMAIL_PRESETS["api"][0]
    for account, user in (("g-box", "alice@example.test"), ("o-box", "bob@example.test")):
        resp = await client.get(f"/v1/account/{account}/oauth-token", headers=admin)
        body = await resp.json()
        assert resp.status == 200, body
        assert body["user"] == user and body["accessToken"].startswith("at-")
    stats = idp.service_stats()
    assert stats["subjects"] == {"alice@example.test": 1} and stats["client_credentials_ok"] == 1
