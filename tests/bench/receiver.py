"""A bench webhook receiver: answers 200 at once, counts event ids, checks sampled signatures.

POST /secret sets the signing secret (loopback, never on a command line); every SAMPLE-th
request's signature is then checked with an HMAC written from the Standard Webhooks spec (not
the sender's code). GET /stats reports the counts and the first hit and the last new id times
(epoch seconds); POST /reset starts a new count.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import time

import orjson
from aiohttp import web

from tests.support.processes import serve_on_loopback

SAMPLE = 100


@dataclasses.dataclass
class Stats:
    """What the receiver has seen since the last reset."""

    requests: int = 0
    unique: int = 0
    checked: int = 0
    bad_signatures: int = 0
    missing_id: int = 0
    connections: int = 0  # distinct client connections (keep-alive: about the peak in use)
    first_hit: float = 0.0
    last_new: float = 0.0


def expected_signature(key: bytes, msg_id: str, timestamp: str, body: bytes) -> str:
    """The base64 HMAC-SHA256 of "{id}.{timestamp}.{body}"."""
    digest = hmac.new(key, b".".join([msg_id.encode(), timestamp.encode(), body]), hashlib.sha256)
    return base64.b64encode(digest.digest()).decode()


def signed_by(key: bytes, msg_id: str, timestamp: str, body: bytes, header: str) -> bool:
    """Whether any v1 signature of the header matches."""
    want = expected_signature(key, msg_id, timestamp, body)
    return any(
        version == "v1" and hmac.compare_digest(sig, want)
        for version, _, sig in (part.partition(",") for part in header.split(" "))
    )


def create_app() -> web.Application:
    """POST /hooks answers 200 at once; /stats, /reset, /secret; main adds GET /health."""
    seen: set[str] = set()
    peers: set[object] = set()
    stats = Stats()
    keys: list[bytes] = []

    async def hook(request: web.Request) -> web.Response:
        msg_id = request.headers.get("webhook-id")
        body = await request.read()
        now = time.time()
        if not stats.requests:
            stats.first_hit = now
        stats.requests += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer not in peers:
            peers.add(peer)
            stats.connections = len(peers)
        if msg_id is None:
            stats.missing_id += 1
            return web.Response(status=400)
        if msg_id not in seen:
            seen.add(msg_id)
            stats.unique += 1
            stats.last_new = now
        if stats.requests % SAMPLE == 1:
            stats.checked += 1
            timestamp = request.headers.get("webhook-timestamp", "")
            header = request.headers.get("webhook-signature", "")
            if not keys or not signed_by(keys[-1], msg_id, timestamp, body, header):
                stats.bad_signatures += 1
        return web.Response(status=200)

    async def report(request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(stats), content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        nonlocal stats
        seen.clear()
        peers.clear()
        stats = Stats()
        return web.Response(text="ok")

    async def secret(request: web.Request) -> web.Response:
        text = (await request.text()).strip()
        try:
            keys.append(base64.b64decode(text.removeprefix("whsec_"), validate=True))
        except binascii.Error:
            return web.Response(status=400, text="not a whsec_ secret")
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hooks", hook)
    app.router.add_get("/stats", report)
    app.router.add_post("/reset", reset)
    app.router.add_post("/secret", secret)
    return app


def main() -> None:
    """Serve the receiver on 127.0.0.1 (default loop policy and run_app, like the service)."""
    serve_on_loopback(create_app, __doc__)


if __name__ == "__main__":
    main()
