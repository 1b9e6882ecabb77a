"""IMAP `AUTHENTICATE XOAUTH2` (RFC 3501 with Google's and Microsoft's SASL mechanism)."""

from __future__ import annotations

from service.mail.login import Attempt, attempt
from service.mail.wire import Connection, Kind, Outcome, ProtocolError, Server, Tls, xoauth2

# Words of a refused login that mean the mailbox has IMAP turned off, not that the token is bad:
# Gmail ("Your account is not enabled for IMAP use", "IMAP access is disabled for your domain")
# and Exchange Online ("User is authenticated but not connected": IMAP off for the mailbox, or
# an app without mailbox permission).
DISABLED_WORDS = (
    "not enabled for imap",
    "imap access is disabled",
    "imap is disabled",
    "authenticated but not connected",
)


async def imap_login(server: Server, user: str, token: str, how: Attempt) -> Outcome:
    """Log in to `server` as `user` with `token`, log out; the classified outcome."""
    sasl = xoauth2(user, token)

    async def session(conn: Connection) -> Outcome:
        greeting = await conn.line()
        if not greeting.startswith("* OK"):
            raise ProtocolError(f"unexpected greeting: {greeting}")
        if server.tls == Tls.STARTTLS:
            await _starttls(conn, server.host)
        outcome = await _authenticate(conn, sasl)
        if outcome.kind == Kind.OK:
            await conn.send("t3 LOGOUT")
        return outcome

    return await attempt(server, session, how, token, sasl)


async def _tagged(conn: Connection, tag: str) -> str:
    """Read up to the tagged answer of `tag`, skipping untagged lines; the text after the tag."""
    while True:
        line = await conn.line()
        if line.startswith(tag + " "):
            return line[len(tag) + 1 :]


async def _starttls(conn: Connection, host: str) -> None:
    await conn.send("t1 STARTTLS")
    answer = await _tagged(conn, "t1")
    if not answer.upper().startswith("OK"):
        raise ProtocolError(f"STARTTLS refused: {answer}")
    await conn.start_tls(host)


async def _authenticate(conn: Connection, sasl: str) -> Outcome:
    await conn.send("t2 AUTHENTICATE XOAUTH2")
    sent = False
    while True:
        line = await conn.line()
        if line.startswith("+"):
            # the first continuation asks for the credentials; a later one carries the
            # server's error (base64 JSON) and waits for an empty line before the NO
            await conn.send("" if sent else sasl)
            sent = True
        elif line.startswith("t2 "):
            return _result(line[3:], sent)


def _result(answer: str, sent: bool) -> Outcome:
    status, _, text = answer.partition(" ")
    status = status.upper()
    if status == "OK":
        return Outcome(Kind.OK, text)
    if not sent or status == "BAD":
        return Outcome(Kind.PROTOCOL, f"XOAUTH2 not accepted: {answer}")
    return Outcome(refusal_kind(text), text)


def refusal_kind(text: str) -> Kind:
    """What a refused AUTHENTICATE's text means: IMAP off for the mailbox, or the token refused."""
    if any(words in text.lower() for words in DISABLED_WORDS):
        return Kind.IMAP_DISABLED
    return Kind.TOKEN_REFUSED
