"""serviceSecret: generated once under a race, re-sealed by key rotation like other secrets."""

from __future__ import annotations

import asyncio

from service.core import Core
from service.crypto.cipher import Cipher
from service.crypto.rotation import KeyRotation
from service.sealed_records import SealedRecords
from service.webhooks.service_secret import ServiceSecret
from tests.conftest import TEST_SECRET
from tests.support.sealed_data import NEW_KEY


async def test_racing_processes_agree_on_one_generated_secret(core: Core) -> None:
    """Ten concurrent ensure() calls generate one secret; every caller gets that one."""
    store = ServiceSecret(core.redis, core.keys, core.cipher)
    found = await asyncio.gather(*(store.ensure() for _ in range(10)))
    assert len({secret for secret, _ in found}) == 1
    assert [made for _, made in found].count(True) == 1
    assert await store.get() == found[0][0]


async def test_key_rotation_reseals_the_secret(core: Core) -> None:
    """After a key rotation the serviceSecret opens with the new key alone, unchanged."""
    store = ServiceSecret(core.redis, core.keys, core.cipher)
    secret, _ = await store.ensure()
    new = Cipher(NEW_KEY, (TEST_SECRET,))
    rotation = KeyRotation(core.redis, core.scripts, new, SealedRecords(core.redis, core.keys))
    assert (await rotation.rotate(batch=10)).complete
    assert await ServiceSecret(core.redis, core.keys, Cipher(NEW_KEY)).get() == secret
