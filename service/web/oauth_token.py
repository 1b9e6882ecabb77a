"""GET /v1/account/{account}/oauth-token: the currently valid access token of an account."""

from __future__ import annotations

from aiohttp import web

from service import errors
from service.settings import OAUTH_TOKENS_API
from service.web.appkeys import CORE
from service.web.io import account_param, authorize, json_response
from service.web.metrics import counted

MAX_MIN_VALIDITY_S = 1800


@counted
async def oauth_token(request: web.Request) -> web.Response:
    """Serve the account's access token, refreshing it first when it expires too soon."""
    account_id = account_param(request)
    core = request.app[CORE]
    await authorize(request, "oauth-tokens", account_id)
    if not await core.setting(OAUTH_TOKENS_API):
        raise errors.ApiEndpointDisabled(
            "the oauth-token endpoint is disabled; enable it on the settings page"
        )
    min_validity = _min_validity(request.query.get("minValidity"))
    view, cached, failed = await core.fresh_token(account_id, min_validity * 1000)
    body = view.body(cached)
    if failed:
        body["refreshFailed"] = True
    return json_response(body, headers={"Cache-Control": "no-store"})


def _min_validity(raw: str | None) -> int:
    if raw is None:
        return 60
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_MIN_VALIDITY_S:
        raise errors.InvalidMinValidity(
            f"minValidity must be an integer number of seconds from 0 to {MAX_MIN_VALIDITY_S}"
        )
    return value
