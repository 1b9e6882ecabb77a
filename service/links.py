"""Consent links: signed by us, expiring, usable once (their record lives in Redis)."""

from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass

import orjson
from redis.asyncio import Redis

from service import errors
from service.clock import Clock
from service.consent import ConsentRequest
from service.oauth.jose import JoseFailure, Signer, expired
from service.redirects import with_query
from service.store.keys import Keys

LINK_PATH = "/oauth/start"
GRACE_MS = 60_000  # the record outlives the signed expiry, so "expired" and "used" differ


@dataclass(frozen=True)
class Link:
    """A checked link: the id of its record, and whether it starts the consent at once."""

    id: str
    direct: bool  # an API or settings-page start, not a link sent to a user
    exp_s: int = 0  # when its signature expires (epoch seconds)


class HostedLinks:
    """Creates links that start a consent, and spends each one at most once.

    A hosted link (POST /v1/authentication/form) opens a page whose button spends it, so
    that a mail scanner fetching the link does not use it up. A direct link (the `redirect`
    of POST /v1/account with authorize: true) is spent by the GET itself.
    """

    def __init__(
        self, redis: Redis, keys: Keys, signer: Signer, clock: Clock, base_url: str
    ) -> None:
        self.redis, self.keys, self.signer = redis, keys, signer
        self.clock, self.base_url = clock, base_url

    async def create(self, request: ConsentRequest, ttl_s: int, *, direct: bool = False) -> str:
        """Store the request and return the link's URL, valid for `ttl_s` seconds."""
        link_id = secrets.token_urlsafe(18)
        exp_s = self.clock.now_ms() // 1000 + ttl_s
        record = orjson.dumps(asdict(request))
        await self.redis.set(self.keys.link(link_id), record, px=ttl_s * 1000 + GRACE_MS)
        claims: dict[str, object] = {"l": link_id, "exp": exp_s}
        if direct:
            claims["d"] = 1
        return with_query(f"{self.base_url}{LINK_PATH}", link=self.signer.sign(claims))

    async def check(self, token: str | None) -> Link:
        """The link a token names; raise InvalidLink, or LinkExpired (the record is dropped)."""
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
        exp = claims.get("exp")
        return Link(link_id, claims.get("d") == 1, exp if isinstance(exp, int) else 0)

    async def peek(self, link: Link) -> ConsentRequest:
        """The request behind a link that is not used yet; raise LinkUsed."""
        return _request(await self.redis.get(self.keys.link(link.id)))

    async def spend(self, link: Link) -> ConsentRequest:
        """The request behind a link, which is used up; raise LinkUsed."""
        return _request(await self.redis.getdel(self.keys.link(link.id)))

    @staticmethod
    def retry_info(link: Link, request: ConsentRequest) -> dict[str, object] | None:
        """What restore() needs to make a spent hosted link usable again (None: direct)."""
        if link.direct:
            return None
        return {"id": link.id, "exp": link.exp_s, "request": asdict(request)}

    async def restore(self, info: dict[str, object]) -> str | None:
        """Make a spent hosted link usable again for the rest of its life; its URL.

        For a user who backed out at the provider: nothing was granted, so the link they
        were given still connects the account. None when the link has expired meanwhile.
        """
        link_id, exp_s = str(info["id"]), int(str(info["exp"]))
        left_ms = exp_s * 1000 - self.clock.now_ms()
        if left_ms <= 0:
            return None
        record = orjson.dumps(info["request"])
        await self.redis.set(self.keys.link(link_id), record, px=left_ms + GRACE_MS, nx=True)
        token = self.signer.sign({"l": link_id, "exp": exp_s})
        return with_query(f"{self.base_url}{LINK_PATH}", link=token)


def _request(raw: bytes | str | None) -> ConsentRequest:
    if raw is None:
        raise errors.LinkUsed("the link was used already; ask for a new one")
    return ConsentRequest.from_dict(orjson.loads(raw))
