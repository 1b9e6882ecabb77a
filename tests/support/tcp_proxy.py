"""A TCP proxy on loopback that can lose the reply to a chosen request after forwarding it."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

CHUNK = 65_536
EMPTY_ARRAY = b"*0\r\n"


@dataclass
class _Trap:
    """Lose the next `count` replies that carry something, to requests holding `markers`."""

    markers: tuple[bytes, ...]
    count: int


@dataclass(eq=False)
class _Link:
    """One proxied connection: the client's and the upstream's writers."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    watching: bool = False  # the request just forwarded matched the trap
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            writer.close()


class TcpProxy:
    """Forwards 127.0.0.1:port to an upstream; `lose_replies` arms the fault.

    A request is one read from the client (a Redis command from redis-py arrives whole).
    When one holds every marker, it is forwarded; the upstream's reply is read and, unless
    it is an error (e.g. NOSCRIPT) or an empty array, thrown away and the client's connection
    closed: the command ran, its caller never learns the result.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.lost = 0  # replies thrown away so far
        self._trap: _Trap | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()

    async def start(self) -> None:
        """Listen on a free loopback port."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)

    @property
    def port(self) -> int:
        """The port clients connect to."""
        assert self._server is not None, "start() first"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        """A redis:// URL through the proxy."""
        return f"redis://127.0.0.1:{self.port}/0"

    def lose_replies(self, *markers: bytes, count: int = 1) -> None:
        """Lose the next `count` non-empty, non-error replies to requests with all `markers`."""
        self._trap = _Trap(markers, count)

    async def close(self) -> None:
        """Stop listening and drop every connection."""
        if self._server is not None:
            self._server.close()
        for link in list(self._links):
            link.close()
            for task in link.tasks:
                task.cancel()
        if self._server is not None:
            await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        link = _Link(writer, up_writer)
        self._links.add(link)
        link.tasks = [
            asyncio.create_task(self._requests(reader, link)),
            asyncio.create_task(self._replies(up_reader, link)),
        ]
        await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
        link.close()
        for task in link.tasks:
            task.cancel()
        self._links.discard(link)

    async def _requests(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                trap = self._trap
                if trap is not None and all(m in chunk for m in trap.markers):
                    link.watching = True
                link.upstream.write(chunk)
                await link.upstream.drain()

    async def _replies(self, reader: asyncio.StreamReader, link: _Link) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(CHUNK):
                if link.watching:
                    link.watching = False
                    if self._lose(chunk):
                        return  # the caller closes both sides
                link.client.write(chunk)
                await link.client.drain()

    def _lose(self, reply: bytes) -> bool:
        trap = self._trap
        if trap is None or reply.startswith(b"-") or reply == EMPTY_ARRAY:
            return False
        trap.count -= 1
        if trap.count <= 0:
            self._trap = None
        self.lost += 1
        return True
