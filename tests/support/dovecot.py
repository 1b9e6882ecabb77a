"""A real Dovecot (Debian's dovecot-imapd and dovecot-submissiond) on loopback for the mail check.

Its OAuth2 passdb asks the test provider's introspection endpoint (RFC 7662) about every
token presented with XOAUTH2 or OAUTHBEARER, so a token the provider retired is refused and a
fresh one logs in. Everything lives in a temporary directory: no system service or system
configuration is touched. Plain text on loopback (ssl = no) unless given a certificate;
submission relays to a port nobody listens on, which matters only once mail is sent (none is).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from service.clock import SystemClock, iso
from service.core import Core
from tests.support.certs import SelfSigned
from tests.support.idp import Idp
from tests.support.polling import eventually_blocking
from tests.support.processes import die_with_parent, stop_processes
from tests.support.sentinel import free_ports

Client = TestClient[web.Request, web.Application]
DOVECOT = "/usr/sbin/dovecot"
USER = "alice@example.test"  # the token's sub: Dovecot's passdb checks XOAUTH2's user against it
MAIL_SCOPES = "openid email profile offline_access mail.read"
START_TIMEOUT_S = 15.0
CONFIG = """\
instance_name = tokenbroker-test-{imap_port}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap submission
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = xoauth2 oauthbearer
auth_failure_delay = 0
auth_verbose = yes
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 1
hostname = mail.test
mail_location = maildir:~/Maildir
submission_relay_host = 127.0.0.1
submission_relay_port = {relay_port}
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {root}/oauth2.conf.ext
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
  }}
}}
service submission-login {{
  inet_listener submission {{
    address = 127.0.0.1
    port = {submission_port}
  }}
}}
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
# dovecot-oauth2.conf.ext: every login is an introspection (no local token cache), and the
# provider's `active` must be true; the user named in XOAUTH2 must be the token's `sub`.
OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {introspection_url}
force_introspection = yes
username_attribute = sub
active_attribute = active
active_value = true
"""


def installed() -> bool:
    """Whether Dovecot with its IMAP and submission services is installed."""
    base = Path("/usr/lib/dovecot")
    return (
        Path(DOVECOT).exists() and (base / "imap-login").exists() and (base / "submission").exists()
    )


@dataclass
class Dovecot:
    """A running Dovecot: its ports, its directory, its process."""

    root: Path
    imap_port: int
    submission_port: int
    process: subprocess.Popen[bytes]
    imaps_port: int = 0  # implicit TLS, served only with a certificate

    def log(self) -> str:
        """Everything Dovecot logged so far."""
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop the master (its children follow) and remove the directory."""
        stop_processes([self.process])
        shutil.rmtree(self.root, ignore_errors=True)


def start_dovecot(
    introspection_url: str, tls: SelfSigned | None = None, pass_attrs: str | None = None
) -> Dovecot:
    """Start Dovecot on free loopback ports, checking tokens at `introspection_url`.

    Without `tls`, plain text only (imaps is not served); with it, that certificate serves
    STARTTLS on the IMAP and submission ports and implicit TLS on the imaps port.
    `pass_attrs`: passdb fields a successful introspection adds (the oauth2 passdb's
    `pass_attrs`, with `%{oauth2:name}` for a field of the provider's answer).

    The directory is made outside pytest's private temporary tree: Dovecot's unprivileged
    processes (dovenull, dovecot) must be able to reach it.
    """
    root = Path(tempfile.mkdtemp(prefix="tokenbroker-dovecot-"))
    root.chmod(0o755)
    imap_port, imaps_port, submission_port, relay_port = free_ports(4)
    ssl = "ssl = no"
    if tls is not None:
        (root / "cert.pem").write_text(tls.cert_pem)
        (root / "key.pem").write_text(tls.key_pem)
        ssl = f"ssl = yes\nssl_cert = <{root}/cert.pem\nssl_key = <{root}/key.pem"
    (root / "home").mkdir()
    user = pwd.getpwnam("dovecot")
    os.chown(root / "home", user.pw_uid, user.pw_gid)
    oauth2 = OAUTH2_CONFIG.format(introspection_url=introspection_url)
    if pass_attrs is not None:
        oauth2 += f"pass_attrs = {pass_attrs}\n"
    (root / "oauth2.conf.ext").write_text(oauth2)
    config = root / "dovecot.conf"
    config.write_text(
        CONFIG.format(
            root=root,
            imap_port=imap_port,
            imaps_port=imaps_port if tls is not None else 0,
            submission_port=submission_port,
            ssl=ssl,
            relay_port=relay_port,
        )
    )
    process = subprocess.Popen(
        [DOVECOT, "-F", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=open(root / "stderr.log", "wb"),  # noqa: SIM115 - the child keeps it
        preexec_fn=die_with_parent,
    )
    server = Dovecot(root, imap_port, submission_port, process, imaps_port)
    try:
        _wait_listening(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_listening(server: Dovecot) -> None:
    """Wait until both listeners greet (max START_TIMEOUT_S), or fail with Dovecot's log."""

    def greets(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.settimeout(1)
                return bool(sock.recv(100))
        except OSError:
            return False

    def alive() -> None:
        if server.process.poll() is not None:
            raise RuntimeError(f"dovecot exited:\n{diagnostics()}")

    def diagnostics() -> str:
        stderr = (server.root / "stderr.log").read_text(errors="replace")
        return f"{stderr}\n{server.log()[-2000:]}"

    for port in (server.imap_port, server.submission_port):
        eventually_blocking(
            lambda port=port: greets(port),  # type: ignore[misc]
            START_TIMEOUT_S,
            f"dovecot to greet on port {port}",
            every_s=0.05,
            check=alive,
            diagnostics=diagnostics,
        )


@pytest.fixture(scope="module")
def dovecot(idp: Idp) -> Iterator[Dovecot]:
    """A Dovecot checking XOAUTH2 tokens at the test provider, for one test module."""
    if not installed():
        pytest.fail("Dovecot is not installed: run `make mail`")
    server = start_dovecot(idp.introspection_url_with_credentials())
    yield server
    server.stop()


async def mail_app(core: Core, idp: Idp, server: Dovecot, **fields: Any) -> str:
    """An oidc app at the test provider whose mail servers are the test's Dovecot."""
    body = {
        "id": "mailapp",
        "provider": "oidc",
        "clientId": idp.client_id,
        "clientSecret": idp.client_secret,
        "issuer": idp.issuer,
        "tokenUrl": idp.token_url,
        "additionalScopes": ["mail.read"],
        "imapHost": "127.0.0.1",
        "imapPort": server.imap_port,
        "imapTls": "plain",
        "smtpHost": "127.0.0.1",
        "smtpPort": server.submission_port,
        "smtpTls": "plain",
        "mailScope": "mail.read",
        "mailApiUrl": idp.userinfo_url,
        **fields,
    }
    app = await core.apps.create(body, iso(SystemClock().now_ms()))
    return app.id


async def import_mailbox(
    client: Client,
    admin: dict[str, str],
    idp: Idp,
    scope: str = MAIL_SCOPES,
    auth: dict[str, str] | None = None,
    with_access: bool = True,
) -> dict[str, Any]:
    """Import `alice` with a token minted for `scope` (`auth`: oauth2.auth); the minted set.

    `with_access` False imports the refresh token alone: the first use refreshes.
    """
    minted = idp.mint(USER, scope)
    oauth2: dict[str, Any] = {
        "provider": "mailapp",
        "auth": auth or {"user": USER},
        "refreshToken": minted["refresh_token"],
        "scopes": scope.split(),
    }
    if with_access:
        oauth2["accessToken"] = minted["access_token"]
        oauth2["expires"] = iso(SystemClock().now_ms() + 3_600_000)
    resp = await client.post(
        "/v1/account", json={"account": "alice", "oauth2": oauth2}, headers=admin
    )
    assert resp.status == 200, await resp.text()
    return minted
