"""The web application's start-up: the heap it built is frozen for the cyclic collector."""

from __future__ import annotations

import gc

from aiohttp import web

from service.web.app import freeze_heap


async def test_freeze_heap_exempts_the_start_up_heap() -> None:
    """freeze_heap moves every object alive at start-up out of the collector's passes."""
    assert gc.get_freeze_count() == 0
    try:
        await freeze_heap(web.Application())
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
