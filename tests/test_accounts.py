"""AccountStore reads: a record read for one account is never handed out as another's."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from service import errors
from service.account_record import F
from service.core import Core
from tests.test_scope_sets import SCOPES, save


async def test_a_read_answering_another_account_is_refused(
    core: Core, oidc_app: str, redis: Redis
) -> None:
    """A hash that names another account (a misplaced reply) fails the read: no token leaves."""
    await save(core, oidc_app, "mine", SCOPES)
    await save(core, oidc_app, "theirs", SCOPES)
    await redis.hset(core.keys.account("mine"), F.ID, "theirs")  # as if the reply were theirs
    core.cache.clear()
    with pytest.raises(errors.StoreUnavailable):
        await core.accounts.get("mine")
    with pytest.raises(errors.StoreUnavailable):
        await core.accounts.load(["theirs", "mine"])
    with pytest.raises(errors.StoreUnavailable):
        await core.token_service.token_view("mine")
    assert [a.id for a in await core.accounts.load(["theirs"])] == ["theirs"]
