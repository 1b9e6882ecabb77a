"""POST /v1/oauth2/{app}/verify: an app's set-up checked step by step (EmailEngine's route)."""

from __future__ import annotations

from aiohttp import web

from service import errors, limits, validate
from service.app_verify import AppVerifier
from service.web.appkeys import CORE
from service.web.io import authorize, json_body, json_response

FIELDS = {"account", "testConnection"}
TRUE_WORDS, FALSE_WORDS = frozenset({"Y", "true", "1", "on"}), frozenset({"N", "false", "0", ""})


async def verify_app(request: web.Request) -> web.Response:
    """Check the app's configuration, keys and endpoints; answers {app, ..., ok, steps}."""
    await authorize(request, "api")
    core = request.app[CORE]
    app_id = validate.app_id(request.match_info["app"])
    body = await json_body(request) if request.can_read_body else {}
    validate.no_unknown(body, FIELDS)
    _test_connection(body.get("testConnection"))  # no mailbox is opened here: checked only
    account = body.get("account")
    if isinstance(account, str):
        account = account.strip() or None
    if account is not None and (not isinstance(account, str) or len(account) > limits.USER_MAX):
        raise errors.InvalidInput(
            f"account must be a mailbox address of at most {limits.USER_MAX} characters",
            details={"field": "account"},
        )
    app = await core.apps.get(app_id)
    if app is None:
        raise errors.AppNotFound("OAuth2 application was not found")
    verifier = AppVerifier(core.apps, core.cipher, core.oauth.discovery, core.config.base_url)
    return json_response(await verifier.verify(app, account))


def _test_connection(value: object) -> None:
    if value is None or isinstance(value, bool) or (type(value) is int and value in (0, 1)):
        return
    if isinstance(value, str) and (value in TRUE_WORDS or value in FALSE_WORDS):
        return
    raise errors.InvalidInput(
        "testConnection must be true or false", details={"field": "testConnection"}
    )
