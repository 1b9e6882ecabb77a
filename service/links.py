"""Hosted consent links: signed by us, expiring, usable once (their record lives in Redis)."""

from __future__ import annotations

import secrets
from dataclasses import asdict

import orjson
from redis.asyncio import Redis

from service import errors
from service.clock import Clock
from service.consent import ConsentRequest
from service.jws import JoseFailure, Signer, expired
from service.keys import Keys
from service.redirects import with_query

DEFAULT_TTL_S = 86_400
MIN_TTL_S, MAX_TTL_S = 60, 30 * 86_400
LINK_PATH = "/oauth/start"
GRACE_MS = 60_000  # the record outlives the signed expiry, so "expired" and "used" differ


class HostedLinks:
    """Creates links that start a consent, and opens each one at most once."""

    def __init__(
        self, redis: Redis, keys: Keys, signer: Signer, clock: Clock, base_url: str
    ) -> None:
        self.redis, self.keys, self.signer = redis, keys, signer
        self.clock, self.base_url = clock, base_url

    async def create(self, request: ConsentRequest, ttl_s: int) -> str:
        """Store the request and return the link's URL, valid for `ttl_s` seconds."""
        link_id = secrets.token_urlsafe(18)
        exp_s = self.clock.now_ms() // 1000 + ttl_s
        record = orjson.dumps(asdict(request))
        await self.redis.set(self.keys.link(link_id), record, px=ttl_s * 1000 + GRACE_MS)
        token = self.signer.sign({"l": link_id, "exp": exp_s})
        return with_query(f"{self.base_url}{LINK_PATH}", link=token)

    async def open(self, token: str | None) -> ConsentRequest:
        """The request behind a link, which is used up; raise InvalidLink, LinkExpired, LinkUsed."""
        if not token:
            raise errors.InvalidLink("the link is incomplete")
        try:
            claims = self.signer.verify(token)
        except JoseFailure:
            raise errors.InvalidLink("the link was not issued by this service") from None
        link_id = claims.get("l")
        if not isinstance(link_id, str):
            raise errors.InvalidLink("the link was not issued by this service")
        if expired(claims, self.clock.now_ms()):
            await self.redis.delete(self.keys.link(link_id))
            raise errors.LinkExpired("the link has expired; ask for a new one")
        raw = await self.redis.getdel(self.keys.link(link_id))
        if raw is None:
            raise errors.LinkUsed("the link was used already; ask for a new one")
        return ConsentRequest.from_dict(orjson.loads(raw))
