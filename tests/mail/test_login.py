"""A login's network failures: a closed port, a silent server, an address the guard refuses."""

from __future__ import annotations

import asyncio
import socket

from service.mail.imap import imap_login
from service.mail.login import Attempt
from service.mail.smtp import smtp_login
from service.mail.wire import Kind, Server, Tls
from service.outbound.session import AddressGuard
from tests.support.sentinel import free_ports

TOKEN = "ya29.secret-access-token"


async def test_closed_port_is_unreachable() -> None:
    """Nobody listening: unreachable, for IMAP and SMTP alike."""
    (port,) = free_ports(1)
    server = Server("127.0.0.1", port, Tls.PLAIN)
    for login in (imap_login, smtp_login):
        outcome = await login(server, "u@example.test", TOKEN, Attempt(5))
        assert outcome.kind == Kind.UNREACHABLE, outcome


async def test_silent_server_times_out() -> None:
    """A server that accepts and never greets is a timeout within the bound, not a hang."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        server = Server("127.0.0.1", port, Tls.PLAIN)
        loop = asyncio.get_running_loop()
        started = loop.time()
        outcome = await imap_login(server, "u@example.test", TOKEN, Attempt(0.3))
        elapsed = loop.time() - started
    assert outcome.kind == Kind.TIMEOUT and "0.3 s" in outcome.detail
    assert 0.3 <= elapsed < 3


async def test_guard_refuses_loopback() -> None:
    """With the outbound guard (private URLs not allowed), a loopback server is never dialled."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        server = Server("localhost", listener.getsockname()[1], Tls.PLAIN)
        outcome = await smtp_login(server, "u@example.test", TOKEN, Attempt(2, AddressGuard()))
        assert outcome.kind == Kind.UNREACHABLE and "loopback" in outcome.detail
        try:
            listener.accept()
            accepted = True
        except BlockingIOError:
            accepted = False
    assert not accepted


async def test_implicit_tls_to_plain_server_is_unreachable() -> None:
    """TLS to a server that speaks plain text fails as unreachable (TLS failed), not a hang."""

    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK plain IMAP\r\n")
        await writer.drain()
        await reader.read(100)
        writer.close()

    listener = await asyncio.start_server(plain, "127.0.0.1", 0)
    async with listener:
        port = int(listener.sockets[0].getsockname()[1])
        outcome = await imap_login(
            Server("127.0.0.1", port, Tls.IMPLICIT), "u@example.test", TOKEN, Attempt(5)
        )
    assert outcome.kind == Kind.UNREACHABLE and outcome.detail.startswith("TLS failed"), outcome
