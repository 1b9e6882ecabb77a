"""EmailEngine-style deliveries: its body per event, its X-EE-Wh-* headers and its signature.

The outbox keeps our own event JSON; this module turns it into the request EmailEngine would
make at delivery time, so switching the format applies to events already queued.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

import orjson

from service.clock import parse_iso_ms

FORMATS = ("standard", "emailengine")
USER_AGENT = "tokenbroker (+emailengine-compatible webhooks)"
SIGNATURE, EVENT_ID = "X-EE-Wh-Signature", "X-EE-Wh-Event-Id"


def new_service_secret() -> str:
    """A new serviceSecret as EmailEngine makes one: 16 random bytes in hex."""
    return secrets.token_hex(16)


def ee_signature(service_secret: str, body: bytes) -> str:
    """X-EE-Wh-Signature: base64url without padding of HMAC-SHA256(serviceSecret, body)."""
    digest = hmac.new(service_secret.encode(), body, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _auth_error(data: dict[str, Any]) -> dict[str, Any]:
    """AuthenticationError as EmailEngine reports a refused token renewal."""
    error, description = data.get("error"), data.get("error_description")
    status = data.get("httpStatus")
    provider = data.get("provider")
    head = f"Token request failed for {provider} (refresh_token, HTTP {status or '?'})"
    detail = " - ".join(str(part) for part in (error, description) if part)
    found: dict[str, Any] = {
        "response": f"{head}: {detail}" if detail else head,
        "serverResponseCode": "OauthRenewError",
    }
    if status is not None:  # the token endpoint answered: EmailEngine adds the request
        answer = {k: v for k, v in (("error", error), ("error_description", description)) if v}
        found["tokenRequest"] = {
            "grant": "refresh_token",
            "provider": provider,
            "status": status,
            "response": answer,
        }
    return found


def ee_data(event: str, account: str | None, app: str | None, data: dict[str, Any]) -> Any:
    """The `data` EmailEngine sends for the event; ours as it is for events it lacks."""
    if event in ("accountAdded", "accountDeleted"):
        return {"account": account}
    if event == "authenticationSuccess":
        return {"user": data.get("user")}
    if event == "authenticationError":
        return _auth_error(data)
    return {**data, "app": app} if app is not None else data  # scopesMissing, app events


def ee_body(payload: dict[str, Any], service_url: str) -> bytes:
    """The request body: {serviceUrl, account, date, event, data}, compact as JSON.stringify."""
    event, account = str(payload.get("event")), payload.get("account")
    body = {
        "serviceUrl": service_url,
        "account": account,
        "date": payload.get("date"),
        "event": event,
        "data": ee_data(event, account, payload.get("app"), payload.get("data") or {}),
    }
    return orjson.dumps(body)


def ee_headers(
    payload: dict[str, Any],
    body: bytes,
    service_secret: str,
    custom: dict[str, str],
    attempts_made: int,
    now_ms: int,
) -> dict[str, str]:
    """Headers in EmailEngine's order: its own, the custom ones, then event id and signature.

    A custom header may replace User-Agent (as in EmailEngine); names are compared
    case-insensitively so a header is never sent twice.
    """
    msg_id = str(payload.get("id"))
    try:
        queued_s = max(0, round((now_ms - parse_iso_ms(str(payload.get("date")))) / 1000))
    except ValueError:
        queued_s = 0
    headers: dict[str, str] = {}

    def put(name: str, value: str) -> None:
        for existing in [k for k in headers if k.lower() == name.lower()]:
            del headers[existing]
        headers[name] = value

    for name, value in (
        ("Content-Type", "application/json"),
        ("User-Agent", USER_AGENT),
        ("X-EE-Wh-Id", msg_id),
        ("X-EE-Wh-Attempts-Made", str(attempts_made)),
        ("X-EE-Wh-Queued-Time", f"{queued_s}s"),
        *custom.items(),
        (EVENT_ID, msg_id),
        (SIGNATURE, ee_signature(service_secret, body)),
    ):
        put(name, value)
    return headers


def ee_request(
    raw_payload: str,
    service_url: str,
    service_secret: str,
    custom: dict[str, str],
    attempts_made: int,
    now_ms: int,
) -> tuple[bytes, dict[str, str]]:
    """(body, headers) of one EmailEngine-style delivery of a stored event."""
    payload = orjson.loads(raw_payload)
    body = ee_body(payload, service_url)
    headers = ee_headers(payload, body, service_secret, custom, attempts_made, now_ms)
    return body, headers
