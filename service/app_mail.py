"""An app's mail server fields: where its accounts' mailboxes are checked (service/mail_servers)."""

from __future__ import annotations

import re
from typing import Any

from service import errors, limits, validate
from service.config import Config
from service.outbound.urls import check_outbound_url

HOST_FIELDS = ("imapHost", "smtpHost")
PORT_FIELDS = ("imapPort", "smtpPort")
TLS_FIELDS = ("imapTls", "smtpTls")
MAIL_FIELDS = (*HOST_FIELDS, *PORT_FIELDS, *TLS_FIELDS, "mailScope", "mailApiUrl")
# the fields that decide where (and how protected) the mail check sends access tokens
TOKEN_TARGET_FIELDS = (*HOST_FIELDS, *PORT_FIELDS, *TLS_FIELDS, "mailApiUrl")
TLS_MODES = ("tls", "starttls", "plain")
HOST = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\]")
HOST_MAX = 255


def mail_pairs(body: dict[str, Any], config: Config) -> dict[str, str]:
    """The body's mail server fields, checked, as hash pairs (None values are left out)."""
    pairs: dict[str, str] = {}
    for name in HOST_FIELDS:
        host = validate.string(body, name, max_len=HOST_MAX)
        if host is not None:
            if not HOST.fullmatch(host):
                raise errors.InvalidInput(
                    f"{name} must be a host name or an IP address", details={"field": name}
                )
            pairs[name] = host.strip("[]")
    for name in PORT_FIELDS:
        port = body.get(name)
        if type(port) is float and port.is_integer():
            port = int(port)  # JSON's 587.0 is the integer 587
        if port is not None:
            if type(port) is not int or not 1 <= port <= 65535:
                raise errors.InvalidInput(
                    f"{name} must be an integer from 1 to 65535", details={"field": name}
                )
            pairs[name] = str(port)
    for name in TLS_FIELDS:
        mode = validate.string(body, name, max_len=16)
        if mode is not None:
            if mode not in TLS_MODES:
                raise errors.InvalidInput(
                    f"{name} must be one of {', '.join(TLS_MODES)}", details={"field": name}
                )
            pairs[name] = mode
    scope = validate.string(body, "mailScope", max_len=limits.SCOPE_MAX)
    if scope is not None:
        if not validate.SCOPE.fullmatch(scope):
            raise errors.InvalidInput("mailScope must be one scope", details={"field": "mailScope"})
        pairs["mailScope"] = scope
    url = validate.string(body, "mailApiUrl", max_len=limits.URL_MAX)
    if url is not None:
        pairs["mailApiUrl"] = check_outbound_url(
            url, "mailApiUrl", allow_private=config.allow_private_urls
        )
    return pairs


def mail_view(fields: dict[str, str]) -> dict[str, Any]:
    """The mail server fields an app has set, as the API shows them (ports as integers)."""
    return {
        name: int(fields[name]) if name in PORT_FIELDS else fields[name]
        for name in MAIL_FIELDS
        if name in fields
    }
