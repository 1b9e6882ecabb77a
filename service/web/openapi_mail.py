"""OpenAPI schemas of the mailbox check: its answer and the apps' mail server fields."""

from __future__ import annotations

from typing import Any

from service.app_mail import HOST, HOST_FIELDS, HOST_MAX, PORT_FIELDS, TLS_FIELDS, TLS_MODES
from service.limits import SCOPE_MAX, URL_MAX
from service.mail.wire import Kind
from service.validate import SCOPE

Schema = dict[str, Any]
CODES = [*(kind.value for kind in Kind if kind != Kind.OK), "missingScope", "notConfigured"]


def _of(*types: str, **keywords: Any) -> Schema:
    return {"type": types[0] if len(types) == 1 else list(types), **keywords}


def mail_app_fields(url_pattern: str, *, nullable: bool) -> Schema:
    """The mail server fields of an app: in its input (`nullable`: null resets) or its view."""
    extra = ("null",) if nullable else ()
    tls = [*TLS_MODES, None] if nullable else list(TLS_MODES)
    return {
        **{
            name: _of("string", *extra, maxLength=HOST_MAX, pattern=f"^(?:{HOST.pattern})$")
            for name in HOST_FIELDS
        },
        **{name: _of("integer", *extra, minimum=1, maximum=65535) for name in PORT_FIELDS},
        **{name: _of("string", *extra, enum=tls) for name in TLS_FIELDS},
        "mailScope": _of(
            "string",
            *extra,
            maxLength=SCOPE_MAX,
            pattern=f"^{SCOPE.pattern}$",
            description="oidc: the scope mail needs",
        ),
        "mailApiUrl": _of(
            "string",
            *extra,
            minLength=1,
            maxLength=URL_MAX,
            pattern=url_pattern,
            description="the mail API's profile URL (default: Gmail's or Graph's)",
        ),
    }


def mail_check_schemas() -> Schema:
    """AccountVerified: per protocol ok, skipped or failed, with a code and a remediation."""
    server = _of(
        "object",
        properties={
            "host": _of("string"),
            "port": _of("integer"),
            "tls": _of("string", enum=list(TLS_MODES)),
        },
        required=["host", "port", "tls"],
    )
    result = _of(
        "object",
        properties={
            "status": _of("string", enum=["ok", "skipped", "failed"]),
            "server": server,
            "url": _of("string"),
            "code": _of("string", enum=CODES),
            "remediation": _of("string"),
            "message": _of("string", description="the server's words (never the token)"),
            "elapsedMs": _of("integer", minimum=0),
        },
        required=["status"],
    )
    props = {
        **{name: _of("string") for name in ("account", "user", "app", "provider")},
        "ok": _of("boolean", description="no protocol failed"),
        **{name: result for name in ("imap", "smtp", "api")},
    }
    return {"AccountVerified": _of("object", properties=props, required=list(props))}
