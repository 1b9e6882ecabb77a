"""Settings routes: read all, change some (the JSON API can disable the token endpoint only)."""

from __future__ import annotations

from aiohttp import web

from service import errors
from service.settings import OAUTH_TOKENS_API, check_value
from service.web.appkeys import CONFIG, CORE
from service.web.io import authorize, json_body, json_response
from service.webhooks.headers import WebhookHeaders
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret


async def get_settings(request: web.Request) -> web.Response:
    """Return every setting."""
    await authorize(request, "api")
    return json_response(await request.app[CORE].settings.all())


async def put_settings(request: web.Request) -> web.Response:
    """Change the given settings; enabling the token endpoint is refused here."""
    await authorize(request, "api")
    body = await json_body(request)
    allow_private = request.app[CONFIG].allow_private_urls
    values = {
        name: check_value(name, value, allow_private=allow_private) for name, value in body.items()
    }
    if values.get(OAUTH_TOKENS_API) is True:
        raise errors.SettingNotAllowed(
            "the oauth-token endpoint can be enabled only on the settings page or with "
            "`tokenbroker settings set enableOAuthTokensApi true`",
            details={"field": OAUTH_TOKENS_API},
        )
    core = request.app[CORE]
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    secret = ServiceSecret(core.redis, core.keys, core.cipher)
    found = await core.settings.update(values, headers, secret)
    if isinstance(found[SERVICE_SECRET], str):  # set or generated now: shown this once
        return json_response(found, headers={"Cache-Control": "no-store"})
    return json_response(found)
