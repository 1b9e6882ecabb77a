"""Settings routes: read all or some, change some (the API can disable the token endpoint only).

GET with query keys and POST are EmailEngine's forms (service/web/ee_settings.py).
"""

from __future__ import annotations

from aiohttp import web

from service import errors
from service.settings import OAUTH_TOKENS_API, check_value
from service.web.appkeys import CONFIG, CORE
from service.web.ee_settings import post_settings, read_view, selected_keys
from service.web.io import ACCESS_TOKEN_PARAM, authorize, json_body, json_response
from service.webhooks.headers import WebhookHeaders
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret


async def get_settings(request: web.Request) -> web.Response:
    """Return every setting; with query keys (`?webhooks=true`) EmailEngine's view of those."""
    await authorize(request, "api")
    ours = await request.app[CORE].settings.all()
    query = {k: v for k, v in request.query.items() if k != ACCESS_TOKEN_PARAM}
    if not query:
        return json_response(ours)
    keys = selected_keys(query)
    return json_response(read_view(ours, keys, request.app[CONFIG].base_url))


async def post_settings_ee(request: web.Request) -> web.Response:
    """EmailEngine's POST /v1/settings: its keys and value forms; answers {updated}."""
    await authorize(request, "api")
    body = await json_body(request)
    core, config = request.app[CORE], request.app[CONFIG]
    headers = WebhookHeaders(core.redis, core.keys, core.cipher)
    return await post_settings(body, core, headers, config.base_url, config.allow_private_urls)


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
