"""IMAP and SMTP logins over TLS (implicit and STARTTLS) at a real Dovecot with a certificate."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.mail.imap import imap_login
from service.mail.login import Attempt
from service.mail.smtp import smtp_login
from service.mail.wire import Kind, Server, Tls
from tests.support.certs import SelfSigned, server_certificate
from tests.support.dovecot import USER, Dovecot, installed, start_dovecot
from tests.support.idp import Idp


@pytest.fixture(scope="module")
def certificate() -> SelfSigned:
    """Dovecot's certificate, for localhost and 127.0.0.1."""
    return server_certificate("localhost")


@pytest.fixture(scope="module")
def tls_dovecot(idp: Idp, certificate: SelfSigned) -> Iterator[Dovecot]:
    """A Dovecot serving TLS with `certificate`."""
    if not installed():
        pytest.fail("Dovecot is not installed: run `make mail`")
    server = start_dovecot(idp.introspection_url_with_credentials(), tls=certificate)
    yield server
    server.stop()


@pytest.fixture
def trusted(certificate: SelfSigned, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the certificate a trust anchor of this process (SSL_CERT_FILE, read by OpenSSL)."""
    path = tmp_path / "ca.pem"
    path.write_text(certificate.cert_pem)
    monkeypatch.setenv("SSL_CERT_FILE", str(path))


async def test_starttls_and_implicit_tls_log_in(
    tls_dovecot: Dovecot, idp: Idp, trusted: None
) -> None:
    """IMAP STARTTLS, IMAP on the TLS port and SMTP STARTTLS all log in with a good token."""
    token = str(idp.mint(USER, "openid mail.read")["access_token"])
    servers = [
        (imap_login, Server("localhost", tls_dovecot.imap_port, Tls.STARTTLS)),
        (imap_login, Server("localhost", tls_dovecot.imaps_port, Tls.IMPLICIT)),
        (smtp_login, Server("localhost", tls_dovecot.submission_port, Tls.STARTTLS)),
    ]
    for login, server in servers:
        outcome = await login(server, USER, token, Attempt(10))
        assert outcome.kind == Kind.OK, (server, outcome)


async def test_untrusted_certificate_is_unreachable(tls_dovecot: Dovecot, idp: Idp) -> None:
    """A certificate nobody vouches for stops the login before the token is sent."""
    token = str(idp.mint(USER, "openid mail.read")["access_token"])
    before = tls_dovecot.log().count("oauth2(")
    for login, port in (
        (imap_login, tls_dovecot.imaps_port),
        (smtp_login, tls_dovecot.submission_port),
    ):
        tls = Tls.IMPLICIT if port == tls_dovecot.imaps_port else Tls.STARTTLS
        outcome = await login(Server("localhost", port, tls), USER, token, Attempt(10))
        assert outcome.kind == Kind.UNREACHABLE and "CERTIFICATE_VERIFY_FAILED" in outcome.detail
    assert tls_dovecot.log().count("oauth2(") == before
