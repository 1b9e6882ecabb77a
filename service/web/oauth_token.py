"""GET /v1/account/{account}/oauth-token: the currently valid access token of an account."""

from __future__ import annotations

from aiohttp import web
from multidict import CIMultiDict

from service import errors
from service.accounts import Account
from service.core import Core
from service.limits import MIN_VALIDITY_S
from service.resources import DEFAULT, Resource, resolve, resource_name
from service.settings import OAUTH_TOKENS_API
from service.tokens import FreshToken
from service.web.appkeys import CORE, REQUEST_ID
from service.web.client_ip import client_ip
from service.web.io import account_param, authorize
from service.web.metrics import counted

RESOURCE_MAX = 256  # characters of a ?resource= kept in the audit record
# copied by each answer (a CIMultiDict copies another faster than it reads a dict)
TOKEN_HEADERS = CIMultiDict({"Content-Type": "application/json", "Cache-Control": "no-store"})


@counted
async def oauth_token(request: web.Request) -> web.Response:
    """Serve the account's access token, refreshing it first when it expires too soon.

    `resource` or `scopes` ask for a per-resource (Microsoft) or down-scoped token instead.
    """
    account_id = account_param(request)
    core = request.app[CORE]
    if core.tracing.enabled:
        with core.tracing.span("auth"):
            token = await authorize(request, "oauth-tokens", account_id)
    else:  # the hot path, without even a no-op span
        token = await authorize(request, "oauth-tokens", account_id)
    if not await core.cached_settings.get(OAUTH_TOKENS_API):
        raise errors.ApiEndpointDisabled(
            "the oauth-token endpoint is disabled; enable it on the settings page"
        )
    query = request.query if request.query_string else None  # most requests carry none
    min_validity = _min_validity(query.get("minValidity") if query else None)
    resource: Resource | None = None
    if query is not None and ("resource" in query or "scopes" in query):
        account = await core.accounts.require(account_id)
        resource = await _resource(core, account, query.get("resource"), query.get("scopes"))
        token.allows_resource(resource.name, resource.audience)
        fresh = await core.token_service.fresh_resource_token(
            account, resource, min_validity * 1000
        )
    else:
        if token.resources is not None:
            token.allows_resource(DEFAULT)
        fresh = await core.token_service.fresh_token(account_id, min_validity * 1000)
    if core.audit.enabled:
        core.audit.token_answer(
            account=account_id,
            api_token=(token.id, token.description),
            client=client_ip(request),
            request_id=request[REQUEST_ID],
            source=_source(fresh),
            resource=resource.name[:RESOURCE_MAX] if resource is not None else None,
        )
    return web.Response(body=fresh.json(), headers=TOKEN_HEADERS)


def _source(fresh: FreshToken) -> str:
    """How the answer was obtained, as the audit trail names it."""
    if fresh.refresh_failed:
        return "refresh_failed"
    return "cache" if fresh.cached else "refresh"


async def _resource(core: Core, account: Account, name: str | None, scopes: str | None) -> Resource:
    """The token a resource/scopes request names, checked against what was consented."""
    app = await core.apps.cached(account.app)
    consented = list(dict.fromkeys([*app.scopes, *account.scopes]))
    name = resource_name(name) if name is not None else None
    return resolve(app.provider, app.cloud, consented, name, scopes)


def _min_validity(raw: str | None) -> int:
    if raw is None:
        return MIN_VALIDITY_S.default
    try:
        value = int(raw)
    except ValueError:
        value = -1
    low, high = MIN_VALIDITY_S.low, MIN_VALIDITY_S.high
    if not low <= value <= high:
        raise errors.InvalidMinValidity(
            f"minValidity must be an integer number of seconds from {low} to {high}"
        )
    return value
