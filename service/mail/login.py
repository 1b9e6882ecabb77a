"""A login attempt bounded in time, its network failures classified (shared by IMAP and SMTP)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from service.mail.wire import Connection, Kind, Outcome, ProtocolError, Server, scrub
from service.outbound.session import AddressGuard

Session = Callable[[Connection], Awaitable[Outcome]]


@dataclass(frozen=True)
class Attempt:
    """How to attempt a login: within what time, through which address guard (None: any)."""

    timeout_s: float
    guard: AddressGuard | None = None


async def attempt(server: Server, session: Session, how: Attempt, *secrets: str) -> Outcome:
    """Connect to `server` and run `session` on it within the time allowed; never raises.

    Whatever the server said is scrubbed of `secrets` before it goes into the outcome.
    """
    timeout_s = how.timeout_s
    try:
        async with asyncio.timeout(timeout_s):
            conn = await Connection.open(server, how.guard)
            try:
                outcome = await session(conn)
            finally:
                await conn.close()
    except TimeoutError:
        return Outcome(Kind.TIMEOUT, f"no answer within {timeout_s:g} s")
    except ssl.SSLError as exc:
        return Outcome(Kind.UNREACHABLE, f"TLS failed: {exc.reason or exc.__class__.__name__}")
    except OSError as exc:
        return Outcome(Kind.UNREACHABLE, scrub(exc.strerror or str(exc), *secrets))
    except ProtocolError as exc:
        return Outcome(Kind.PROTOCOL, scrub(str(exc), *secrets))
    return Outcome(outcome.kind, scrub(outcome.detail, *secrets))
