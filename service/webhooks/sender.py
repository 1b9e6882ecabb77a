"""One signed webhook POST: a timeout, no redirects, no body kept (Standard Webhooks or EE)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import aiohttp
import structlog

from service.clock import iso
from service.outbound.session import discard, refusal_in
from service.webhooks.signing import signature_header

log = structlog.get_logger("webhooks")


@dataclass(frozen=True)
class Attempt:
    """What one delivery attempt got: an HTTP status, or an error without one."""

    at_ms: int
    status: int | None
    error: str | None
    duration_ms: int

    @property
    def ok(self) -> bool:
        """A 2xx answer: delivered."""
        return self.status is not None and 200 <= self.status < 300

    def public(self) -> dict[str, Any]:
        """The attempt as stored and listed."""
        return {
            "date": iso(self.at_ms),
            "status": self.status,
            "error": self.error,
            "durationMs": self.duration_ms,
        }


def standard_headers(
    extra: dict[str, str], secrets: list[str], msg_id: str, body: bytes, now_ms: int
) -> dict[str, str]:
    """Standard Webhooks headers, signed with every active secret, after the custom ones."""
    stamp = now_ms // 1000
    return {
        **extra,
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature_header(secrets, msg_id, stamp, body),
    }


class Sender:
    """Posts signed event bodies to the receiver."""

    def __init__(self, http: aiohttp.ClientSession, timeout_s: float) -> None:
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(
        self, url: str, headers: dict[str, str], msg_id: str, body: bytes, now_ms: int
    ) -> Attempt:
        """POST a body with the (signed) headers given; never raises for receiver trouble."""
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        try:
            async with self.http.post(
                url, data=body, headers=headers, timeout=self.timeout, allow_redirects=False
            ) as response:
                status = response.status
                await discard(response)  # only the status counts: the body is never kept
                if not 200 <= status < 300:
                    error = f"receiver answered {status}"
        except TimeoutError:
            error = "timeout"
        except (aiohttp.ClientError, OSError) as exc:
            error = refusal_in(exc) or f"network: {type(exc).__name__}"
        except Exception as exc:  # e.g. a header the client cannot send: still a failed attempt
            log.warning("webhook_send_failed", id=msg_id, error=type(exc).__name__)
            error = f"failed: {type(exc).__name__}"
        elapsed = int((time.perf_counter() - started) * 1000)
        return Attempt(now_ms, status, error, elapsed)
