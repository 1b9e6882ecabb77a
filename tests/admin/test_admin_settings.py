"""The settings page's webhook format: EmailEngine-style or Standard Webhooks, secret shown once."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.core import Core
from service.webhooks.service_secret import ServiceSecret
from tests.support.admin import post_form

Client = TestClient[web.Request, web.Application]
BOX = re.compile(r'id="new-service-secret">([0-9a-f]{32})<')


async def test_choosing_emailengine_shows_the_generated_secret_once(
    operator: Client, core: Core
) -> None:
    """Saving the EmailEngine format generates serviceSecret, shown on that answer only."""
    form = {"webhooks": "https://hooks.example.com/in", "webhookFormat": "emailengine"}
    resp = await post_form(operator, "/admin/settings", form)
    body = await resp.text()
    assert resp.status == 200 and resp.headers["Cache-Control"] == "no-store"
    match = BOX.search(body)
    assert match, body[:3000]
    stored = await ServiceSecret(core.redis, core.keys, core.cipher).get()
    assert stored is not None and match.group(1) == stored
    assert (await core.settings.all())["webhookFormat"] == "emailengine"
    page = await (await operator.get("/admin/settings")).text()
    assert stored not in page and "set; write-only" in page
    assert '<option value="emailengine" selected>' in page
    resp = await post_form(operator, "/admin/settings", form)  # saved again: kept, not shown
    assert resp.status == 303
    assert await ServiceSecret(core.redis, core.keys, core.cipher).get() == stored


async def test_typed_secret_then_back_to_standard(operator: Client, core: Core) -> None:
    """A typed serviceSecret is stored sealed; choosing standard switches back and keeps it."""
    typed = "typed-service-secret-0123456789"
    form = {"webhookFormat": "emailengine", "serviceSecret": typed}
    resp = await post_form(operator, "/admin/settings", form)
    assert resp.status == 200 and typed in await resp.text()
    assert await ServiceSecret(core.redis, core.keys, core.cipher).get() == typed
    assert typed not in str(await core.redis.hgetall(core.keys.settings))
    resp = await post_form(operator, "/admin/settings", {"webhookFormat": "standard"})
    assert resp.status == 303
    assert (await core.settings.all())["webhookFormat"] == "standard"
    assert await ServiceSecret(core.redis, core.keys, core.cipher).get() == typed


async def test_unknown_format_is_refused(operator: Client, core: Core) -> None:
    """A format that does not exist is a 400 naming webhookFormat; nothing is stored."""
    resp = await post_form(operator, "/admin/settings", {"webhookFormat": "soap"})
    assert resp.status == 400 and "webhookFormat" in await resp.text()
    assert (await core.settings.all())["webhookFormat"] == "standard"
    assert not await ServiceSecret(core.redis, core.keys, core.cipher).exists()
