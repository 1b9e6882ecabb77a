"""SMTP AUTH XOAUTH2: Exchange Online's "SMTP AUTH disabled" answer is told apart from a refusal."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from service.mail.login import Attempt
from service.mail.smtp import smtp_login
from service.mail.wire import Kind, Server, Tls

TOKEN = "EwB4A8l6BAAU-secret-access-token"
# Exchange Online's answer, word for word, when SMTP AUTH is off for the tenant or mailbox.
# Dovecot cannot say this, so a peer that speaks just enough SMTP says it.
DISABLED = (
    "535 5.7.139 Authentication unsuccessful, SmtpClientAuthentication is disabled for the "
    "Tenant. Visit https://aka.ms/smtp_auth_disabled for more information. "
    "[SN4PR0501CA0056.namprd05.prod.outlook.com]"
)


@asynccontextmanager
async def exchange_like_peer(seen: list[str]) -> AsyncIterator[int]:
    """A submission peer that greets, offers AUTH XOAUTH2 and answers AUTH with DISABLED."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 peer.test Microsoft ESMTP MAIL Service ready\r\n")
        while line := (await reader.readline()).decode().rstrip("\r\n"):
            seen.append(line)
            if line.startswith("EHLO"):
                writer.write(b"250-peer.test Hello\r\n250-AUTH LOGIN XOAUTH2\r\n250 8BITMIME\r\n")
            elif line.startswith("AUTH"):
                writer.write(DISABLED.encode() + b"\r\n")
            else:
                writer.write(b"221 2.0.0 Bye\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    async with server:
        yield int(server.sockets[0].getsockname()[1])


async def test_exchange_smtp_auth_disabled_is_classified() -> None:
    """535 5.7.139 (SMTP AUTH off at Exchange) is smtpAuthDisabled; the token went out once."""
    seen: list[str] = []
    async with exchange_like_peer(seen) as port:
        outcome = await smtp_login(
            Server("127.0.0.1", port, Tls.PLAIN), "user@example.test", TOKEN, Attempt(5)
        )
    assert outcome.kind == Kind.SMTP_AUTH_DISABLED
    assert outcome.detail.startswith("535 5.7.139 Authentication unsuccessful")
    assert TOKEN not in outcome.detail
    auth = [line for line in seen if line.startswith("AUTH XOAUTH2 ")]
    assert len(auth) == 1 and TOKEN in base64.b64decode(auth[0].split()[2]).decode()
