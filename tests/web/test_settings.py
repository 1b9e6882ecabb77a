"""Settings API: read, change, and the rule that it may disable but never enable the endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp.test_utils import TestClient

from service.config import Config
from service.core import Core
from tests.conftest import make_token

Client = TestClient[web.Request, web.Application]


async def test_defaults_and_update(client: Client, admin: dict[str, str]) -> None:
    """Settings start at their defaults and PUT changes only the given ones."""
    body = await (await client.get("/v1/settings", headers=admin)).json()
    assert body["enableOAuthTokensApi"] is False and body["webhookEvents"] == "*"
    resp = await client.put(
        "/v1/settings",
        headers=admin,
        json={"webhooks": "https://hooks.example.com/x", "webhookEvents": ["accountAdded"]},
    )
    body = await resp.json()
    assert resp.status == 200, body
    assert body["webhooks"] == "https://hooks.example.com/x"
    assert body["webhookEvents"] == ["accountAdded"]


async def test_api_cannot_enable_token_endpoint(
    client: Client, admin: dict[str, str], core: Core
) -> None:
    """PUT may disable the oauth-token endpoint but enabling it is 403 SettingNotAllowed."""
    resp = await client.put("/v1/settings", headers=admin, json={"enableOAuthTokensApi": True})
    assert resp.status == 403
    assert (await resp.json())["code"] == "SettingNotAllowed"
    assert (await core.settings.all())["enableOAuthTokensApi"] is False
    await core.settings.update({"enableOAuthTokensApi": True})
    resp = await client.put("/v1/settings", headers=admin, json={"enableOAuthTokensApi": False})
    assert (await resp.json())["enableOAuthTokensApi"] is False


async def test_invalid_values(client: Client, admin: dict[str, str]) -> None:
    """Unknown settings and bad values answer 400 InvalidInput naming the field."""
    for body in (
        {"nope": 1},
        {"webhooks": "ftp://x"},
        {"webhookEvents": ["bogus"]},
        {"webhooksEnabled": "yes"},
        {"webhookHeaders": {"a": 1}},
    ):
        resp = await client.put("/v1/settings", headers=admin, json=body)
        assert resp.status == 400, body
        assert (await resp.json())["code"] == "InvalidInput"


async def test_seed_only_at_first_start(core: Core) -> None:
    """The environment seed sets the endpoint flag only when it was never set."""
    assert await core.settings.seed("enableOAuthTokensApi", True) is True
    await core.settings.update({"enableOAuthTokensApi": False})
    assert await core.settings.seed("enableOAuthTokensApi", True) is False
    assert (await core.settings.all())["enableOAuthTokensApi"] is False


async def test_private_webhook_urls_refused_in_every_notation(
    make_client: Callable[..., Awaitable[Client]], config: Config, core: Core
) -> None:
    """Without private URLs, every notation of loopback (and of 0.0.0.0) is refused on save."""
    client = await make_client(dataclasses.replace(config, allow_private_urls=False))
    admin = {"Authorization": f"Bearer {await make_token(core, '*')}"}
    for host in (
        "localhost.",
        "0x7f000001",
        "2130706433",
        "0",
        "127.1",
        "0177.0.0.1",
        "[::ffff:127.0.0.1]",
        "100.64.0.1",
        "169.254.169.254",
    ):
        body = {"webhooks": f"http://{host}:8080/hooks"}
        resp = await client.put("/v1/settings", headers=admin, json=body)
        answer = await resp.json()
        assert resp.status == 400 and answer["code"] == "InvalidInput", (host, answer)
        assert answer["details"]["field"] == "webhooks"
    body = {"webhooks": "https://hooks.example.com/in"}
    assert (await client.put("/v1/settings", headers=admin, json=body)).status == 200


async def test_webhook_headers_checked(client: Client, admin: dict[str, str], core: Core) -> None:
    """Control characters and framing or webhook-* names are refused, naming the header."""
    for headers, name, reason in (
        ({"X-Team": "a\x00b"}, "X-Team", "controlCharacter"),
        ({"X-Team": "a\rb"}, "X-Team", "controlCharacter"),
        ({"X-Team": "a\nX-Evil: 1"}, "X-Team", "controlCharacter"),
        ({"X-Team": "a\x7f"}, "X-Team", "controlCharacter"),
        ({"X-Team": "v" * 4097}, "X-Team", "tooLong"),
        ({"X-Ok\r\nEvil": "1"}, "X-Ok\r\nEvil", "invalidName"),
        ({"Host": "evil.example"}, "Host", "reserved"),
        ({"content-length": "0"}, "content-length", "reserved"),
        ({"Transfer-Encoding": "chunked"}, "Transfer-Encoding", "reserved"),
        ({"Connection": "close"}, "Connection", "reserved"),
        ({"Keep-Alive": "1"}, "Keep-Alive", "reserved"),
        ({"Upgrade": "h2c"}, "Upgrade", "reserved"),
        ({"TE": "trailers"}, "TE", "reserved"),
        ({"Content-Type": "text/plain"}, "Content-Type", "reserved"),
        ({"Webhook-Signature": "v1,forged"}, "Webhook-Signature", "reserved"),
        ({"webhook-id": "msg_x"}, "webhook-id", "reserved"),
        ({"X-Team": "a", "x-team": "b"}, "x-team", "duplicate"),
    ):
        resp = await client.put("/v1/settings", headers=admin, json={"webhookHeaders": headers})
        body = await resp.json()
        assert resp.status == 400 and body["code"] == "InvalidWebhookHeader", (headers, body)
        assert body["details"] == {"field": "webhookHeaders", "header": name, "reason": reason}
        assert "evil.example" not in str(body) and "forged" not in str(body)
    assert (await core.settings.all())["webhookHeaders"] == {}
    good = {"X-Team": "tokens", "Authorization": "Bearer abc", "X-Env": "prod"}
    resp = await client.put("/v1/settings", headers=admin, json={"webhookHeaders": good})
    assert resp.status == 200
