"""A webhook receiver on a loopback port that records every request (tests' fixture `receiver`)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from aiohttp import web
from aiohttp.test_utils import TestServer

HUGE = 50 * 1024 * 1024


@dataclasses.dataclass
class Receiver:
    """A webhook receiver that records every request and answers `status`."""

    status: int = 200
    got: list[tuple[dict[str, str], bytes]] = dataclasses.field(default_factory=list)
    url: str = ""
    sent: int = 0  # bytes of the huge answer written
    finished: bool = False  # the huge answer was written in full
    ended: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        """Record the request and answer the configured status."""
        self.got.append((dict(request.headers), await request.read()))
        return web.Response(status=self.status)

    async def huge(self, request: web.Request) -> web.StreamResponse:
        """Record the request and answer 200 with a 50 MB body; note how much got out."""
        self.got.append((dict(request.headers), await request.read()))
        response = web.StreamResponse(status=200)
        response.content_length = HUGE
        await response.prepare(request)
        try:
            while self.sent < HUGE:
                await response.write(b"x" * 65536)
                self.sent += 65536
            await response.write_eof()
            self.finished = True
        except OSError:  # the sender hung up
            pass
        finally:
            self.ended.set()
        return response

    def events(self) -> list[dict[str, Any]]:
        """The bodies received, parsed."""
        return [orjson.loads(body) for _, body in self.got]


@asynccontextmanager
async def serving_receiver() -> AsyncIterator[Receiver]:
    """A Receiver served on a loopback port: `url` is its /hooks path (/huge answers 50 MB)."""
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hooks", rec.handle)
    app.router.add_post("/huge", rec.huge)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    rec.url = str(server.make_url("/hooks"))
    try:
        yield rec
    finally:
        await server.close()
