"""What the IMAP and SMTP logins share: the server, the connection, the outcome, the SASL string."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from dataclasses import dataclass
from enum import StrEnum

from service.outbound.session import AddressGuard

LINE_MAX = 16 << 10  # a server line longer than this is a protocol error, never a big buffer
DETAIL_MAX = 200  # of a server's answer, this much is kept to show


class Tls(StrEnum):
    """How a connection is protected: implicit TLS, STARTTLS, or none (loopback tests)."""

    IMPLICIT = "tls"
    STARTTLS = "starttls"
    PLAIN = "plain"


@dataclass(frozen=True)
class Server:
    """Where to log in: host, port and TLS mode."""

    host: str
    port: int
    tls: Tls

    def view(self) -> dict[str, object]:
        """The server as answers show it."""
        return {"host": self.host, "port": self.port, "tls": self.tls.value}


class Kind(StrEnum):
    """How a login ended (the classified failures are the answer's `failure` codes)."""

    OK = "ok"
    TOKEN_REFUSED = "tokenRefused"  # noqa: S105 - a failure code
    IMAP_DISABLED = "imapDisabled"
    SMTP_AUTH_DISABLED = "smtpAuthDisabled"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    PROTOCOL = "protocolError"
    API_FORBIDDEN = "apiForbidden"  # the mail API refused the token's permissions (HTTP 403)


@dataclass(frozen=True)
class Outcome:
    """One login's result: its kind and the server's words (never the token)."""

    kind: Kind
    detail: str = ""


class ProtocolError(Exception):
    """The server said something a login does not expect."""


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 initial client response, base64 (Google's and Microsoft's SASL mechanism)."""
    raw = f"user={user}\x01auth=Bearer {token}\x01\x01"
    return base64.b64encode(raw.encode()).decode("ascii")


def scrub(text: str, *secrets: str) -> str:
    """A server's words cut to DETAIL_MAX with every secret (token, SASL string) taken out."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[hidden]")
    return text[:DETAIL_MAX]


class Connection:
    """A line-oriented connection to a mail server (CRLF lines, length-capped)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: Server, guard: AddressGuard | None) -> Connection:
        """Connect, with TLS from the first byte when the server is so configured.

        With a `guard`, every address the name resolves to must pass it (OutboundRefused,
        an OSError, otherwise), and the connection goes to the first that answers.
        """
        context = ssl.create_default_context() if server.tls == Tls.IMPLICIT else None
        addresses = [server.host]
        if guard is not None:
            found = await asyncio.get_running_loop().getaddrinfo(
                server.host, server.port, type=socket.SOCK_STREAM
            )
            addresses = list(dict.fromkeys(str(info[4][0]) for info in found))
            for address in addresses:
                guard.check(server.host, address, server.port)
        failure: OSError = OSError(f"{server.host} has no address")
        for address in addresses:
            try:
                reader, writer = await asyncio.open_connection(
                    address,
                    server.port,
                    ssl=context,
                    server_hostname=server.host if context else None,
                    limit=LINE_MAX,
                )
            except OSError as exc:
                failure = exc
                continue
            return cls(reader, writer)
        raise failure

    async def start_tls(self, host: str) -> None:
        """Upgrade the connection after the server agreed to STARTTLS."""
        await self.writer.start_tls(ssl.create_default_context(), server_hostname=host)

    async def line(self) -> str:
        """The next line, without its line end; a closed connection is a ProtocolError."""
        try:
            raw = await self.reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            raise ProtocolError("the server closed the connection") from exc
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError("the server sent an overlong line") from exc
        return raw.decode("utf-8", "replace").rstrip("\r\n")

    async def send(self, text: str) -> None:
        """Send one line (CRLF added)."""
        self.writer.write(text.encode() + b"\r\n")
        await self.writer.drain()

    async def close(self) -> None:
        """Close without waiting long for the peer."""
        self.writer.close()
        with contextlib.suppress(OSError, TimeoutError, ssl.SSLError):
            await asyncio.wait_for(self.writer.wait_closed(), 1)
