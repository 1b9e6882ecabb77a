"""Provider calls with an app's credentials: the one in use first, the other after a refusal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from service.apps import App, AppStore
from service.crypto.credentials import ClientCredential
from service.oauth.client import Failure, Revocation

log = structlog.get_logger("credentials")
R = TypeVar("R")


def rejected(result: object) -> bool:
    """Whether the provider refused the client's credentials (not the grant)."""
    if isinstance(result, Failure):
        return result.error == "invalid_client"
    return isinstance(result, Revocation) and result.reason == "invalid_client"


async def with_credentials(
    apps: AppStore, app: App, call: Callable[[ClientCredential | None], Awaitable[R]]
) -> R:
    """Run `call` with the credential in use; on invalid_client, once more with the other.

    While an app holds a current and a next credential, a refusal of one is retried with
    the other, and the one that worked is recorded (tried first from then on). When both
    are refused, the first refusal is the answer.
    """
    found = apps.credentials(app)
    if not found:
        return await call(None)
    first = await call(found[0])
    if not rejected(first) or len(found) == 1:
        return first
    other = found[1]
    log.warning("app_credential_refused", app=app.id, slot=found[0].slot, method=found[0].method)
    second = await call(other)
    if rejected(second):
        log.warning("app_credential_refused", app=app.id, slot=other.slot, method=other.method)
        return first
    log.warning("app_credential_switched", app=app.id, slot=other.slot, method=other.method)
    await apps.use_slot(app, other.slot)
    return second


__all__ = ["rejected", "with_credentials"]
