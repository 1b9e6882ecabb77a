"""GET /metrics: scope `metrics`, Prometheus text with accounts by status and the schedule."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

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
