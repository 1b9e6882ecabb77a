"""GET /metrics: scope `metrics`, Prometheus text with accounts by status and the schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.conftest import make_token

Client = TestClient[web.Request, web.Application]


async def test_metrics_need_their_scope(client: Client, core: Core) -> None:
    """A token without `metrics` gets 403; one with it gets Prometheus text."""
    api = {"Authorization": f"Bearer {await make_token(core, 'api')}"}
    assert (await client.get("/metrics", headers=api)).status == 403
    scraper = {"Authorization": f"Bearer {await make_token(core, 'metrics')}"}
    resp = await client.get("/metrics", headers=scraper)
    assert resp.status == 200
    assert resp.content_type == "text/plain"
    assert "tokenbroker_schedule_depth" in await resp.text()


async def test_accounts_and_schedule_counted(
    client: Client, admin: dict[str, str], import_account: Callable[..., Awaitable[Any]]
) -> None:
    """Imported accounts show up as active and scheduled."""
    await import_account("one")
    await import_account("two")
    text = await (await client.get("/metrics", headers=admin)).text()
    assert 'tokenbroker_accounts{status="active"} 2.0' in text
    assert "tokenbroker_schedule_depth 2.0" in text
    assert 'tokenbroker_accounts{status="reauth_required"} 0.0' in text
    assert "tokenbroker_webhook_dead_letters 0.0" in text
    assert "tokenbroker_webhook_backlog 0.0" in text


def sample(text: str, name: str) -> float | None:
    """The value of the sample `name` (with its labels, as exposed), or None when absent."""
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


async def test_token_requests_counted_by_code_and_timed(
    client: Client,
    admin: dict[str, str],
    enabled: None,
    import_account: Callable[..., Awaitable[Any]],
) -> None:
    """Each token endpoint answer counts once, as `ok` or its error code, and is timed."""
    await import_account("one")
    for query in ("one/oauth-token", "one/oauth-token", "one/oauth-token?minValidity=x"):
        await client.get(f"/v1/account/{query}", headers=admin)
    await client.get("/v1/account/nobody/oauth-token", headers=admin)
    await client.get("/v1/account/nobody/oauth-token")  # no token at all
    text = await (await client.get("/metrics", headers=admin)).text()
    assert sample(text, 'tokenbroker_token_requests_total{code="ok"}') == 2.0
    assert sample(text, 'tokenbroker_token_requests_total{code="InvalidMinValidity"}') == 1.0
    assert sample(text, 'tokenbroker_token_requests_total{code="AccountNotFound"}') == 1.0
    assert sample(text, 'tokenbroker_token_requests_total{code="Unauthorized"}') == 1.0
    assert sample(text, "tokenbroker_token_request_seconds_count") == 5.0


async def test_cache_lookups_exported(
    client: Client,
    admin: dict[str, str],
    enabled: None,
    import_account: Callable[..., Awaitable[Any]],
) -> None:
    """The process cache's hits and misses are served; repeated token requests are hits."""
    await import_account("one")
    first = await (await client.get("/metrics", headers=admin)).text()
    for _ in range(3):
        await client.get("/v1/account/one/oauth-token", headers=admin)
    text = await (await client.get("/metrics", headers=admin)).text()
    name = 'tokenbroker_cache_lookups_total{result="hit"}'
    before, after = sample(first, name), sample(text, name)
    assert before is not None and after is not None
    assert after - before >= 6  # per request: the API token, the settings, the account
    assert sample(text, 'tokenbroker_cache_lookups_total{result="miss"}') is not None


async def test_app_credentials_error_per_app(
    client: Client, core: Core, admin: dict[str, str], oidc_app: str
) -> None:
    """1 while an app's credentials are flagged as rejected, 0 once cleared, gone when deleted."""
    name = f'tokenbroker_app_credentials_error{{app="{oidc_app}"}}'
    text = await (await client.get("/metrics", headers=admin)).text()
    assert sample(text, name) == 0.0
    app = await core.apps.require(oidc_app)
    await core.apps.set_error(app, {"error": "invalid_client"}, SystemClock().now_ms())
    text = await (await client.get("/metrics", headers=admin)).text()
    assert sample(text, name) == 1.0
    await core.apps.set_error(await core.apps.require(oidc_app), None, SystemClock().now_ms())
    assert sample(await (await client.get("/metrics", headers=admin)).text(), name) == 0.0
    await core.apps.delete(oidc_app)
    assert sample(await (await client.get("/metrics", headers=admin)).text(), name) is None


async def test_grants_expiring_counted_by_window(
    client: Client,
    core: Core,
    admin: dict[str, str],
    oidc_app: str,
    import_account: Callable[..., Awaitable[Any]],
) -> None:
    """A single-page app's grant (24 h) counts within 48h and 7d, a testing app's in 7d."""
    now = iso(SystemClock().now_ms())
    await core.apps.update(await core.apps.require(oidc_app), {"publishingStatus": "testing"}, now)
    await import_account("testing")
    spa = {
        "id": "spa",
        "provider": "outlook",
        "authority": "organizations",
        "clientId": "00000000-0000-0000-0000-000000000002",
        "clientSecret": "spa-secret",
        "platform": "spa",
    }
    await core.apps.create(spa, now)
    oauth2 = {"provider": "spa", "auth": {"user": "s@example.test"}, "refreshToken": "rt"}
    resp = await client.post(
        "/v1/account", json={"account": "spa1", "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    text = await (await client.get("/metrics", headers=admin)).text()
    assert sample(text, 'tokenbroker_grants_expiring{within="48h"}') == 1
    assert sample(text, 'tokenbroker_grants_expiring{within="7d"}') == 2
