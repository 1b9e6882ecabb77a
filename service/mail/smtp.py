"""SMTP `AUTH XOAUTH2` on a submission port (RFC 6409, RFC 4954); no mail is sent."""

from __future__ import annotations

from service.mail.login import Attempt, attempt
from service.mail.wire import Connection, Kind, Outcome, ProtocolError, Server, Tls, xoauth2

HELO_NAME = "tokenbroker.invalid"
# Exchange Online when the tenant or mailbox has SMTP AUTH off: "535 5.7.139 Authentication
# unsuccessful, SmtpClientAuthentication is disabled for the Tenant/Mailbox."
AUTH_DISABLED_WORDS = ("5.7.139", "smtpclientauthentication is disabled")
REFUSED_CODES = (535, 534, 530)


async def smtp_login(server: Server, user: str, token: str, how: Attempt) -> Outcome:
    """Greet `server`, log in as `user` with `token` and quit; the classified outcome."""
    sasl = xoauth2(user, token)

    async def session(conn: Connection) -> Outcome:
        code, text = await _reply(conn)
        if code != 220:
            raise ProtocolError(f"unexpected greeting: {code} {text}")
        extensions = await _ehlo(conn)
        if server.tls == Tls.STARTTLS:
            if "STARTTLS" not in extensions:
                raise ProtocolError("the server does not offer STARTTLS")
            await conn.send("STARTTLS")
            code, text = await _reply(conn)
            if code != 220:
                raise ProtocolError(f"STARTTLS refused: {code} {text}")
            await conn.start_tls(server.host)
            await _ehlo(conn)
        outcome = await _auth(conn, sasl)
        if outcome.kind == Kind.OK:
            await conn.send("QUIT")
        return outcome

    return await attempt(server, session, how, token, sasl)


async def _reply(conn: Connection) -> tuple[int, str]:
    """One reply, multi-line or not: its code and its lines' text joined."""
    texts: list[str] = []
    while True:
        line = await conn.line()
        if len(line) < 3 or not line[:3].isdigit():
            raise ProtocolError(f"not an SMTP reply: {line[:80]}")
        texts.append(line[4:])
        if line[3:4] != "-":
            return int(line[:3]), " ".join(texts)


async def _ehlo(conn: Connection) -> set[str]:
    """EHLO; the extension keywords the server offers (upper case)."""
    await conn.send(f"EHLO {HELO_NAME}")
    texts: list[str] = []
    while True:
        line = await conn.line()
        if not line.startswith("250"):
            raise ProtocolError(f"EHLO refused: {line[:120]}")
        texts.append(line[4:])
        if line[3:4] != "-":
            return {text.split(" ", 1)[0].upper() for text in texts[1:]}


async def _auth(conn: Connection, sasl: str) -> Outcome:
    await conn.send(f"AUTH XOAUTH2 {sasl}")
    code, text = await _reply(conn)
    if code == 334:  # the server's error as a challenge; an empty line gets the final reply
        await conn.send("")
        code, text = await _reply(conn)
    return _result(code, text)


def _result(code: int, text: str) -> Outcome:
    answer = f"{code} {text}"
    if code == 235:
        return Outcome(Kind.OK, answer)
    if any(words in text.lower() for words in AUTH_DISABLED_WORDS):
        return Outcome(Kind.SMTP_AUTH_DISABLED, answer)
    if code in REFUSED_CODES:
        return Outcome(Kind.TOKEN_REFUSED, answer)
    return Outcome(Kind.PROTOCOL, answer)
