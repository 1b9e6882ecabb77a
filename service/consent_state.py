"""The single-use state of one consent: a signed token, and its record bound to a browser."""

from __future__ import annotations

from typing import Any

import orjson
from redis.asyncio import Redis

from service import errors
from service.binding import digest, matches
from service.clock import Clock
from service.oauth.jose import JoseFailure, Signer, expired
from service.store.keys import Keys

STATE_TTL_S = 600  # how long a user has between our redirect and the provider's answer


class ConsentStates:
    """Stores state records (PX 10 min) and takes each one once, from its own browser."""

    def __init__(self, redis: Redis, keys: Keys, signer: Signer, clock: Clock) -> None:
        self.redis, self.keys, self.signer, self.clock = redis, keys, signer, clock

    async def put(
        self, nonce: str, record: dict[str, Any], binding: str, redirect_url: str | None
    ) -> str:
        """Store `record` for the browser holding `binding`; return the signed state."""
        stored = {**record, "binding": digest(binding)}
        await self.redis.set(self.keys.state(nonce), orjson.dumps(stored), px=STATE_TTL_S * 1000)
        claims: dict[str, Any] = {"n": nonce, "exp": self.clock.now_ms() // 1000 + STATE_TTL_S}
        if redirect_url:
            claims["r"] = redirect_url
        return self.signer.sign(claims)

    def claims(self, state: str | None) -> dict[str, Any]:
        """The claims of a state we signed (`n` the nonce, `r` the redirectUrl); InvalidState."""
        if not state:
            raise errors.InvalidState("the provider's answer carries no state")
        try:
            claims = self.signer.verify(state)
        except JoseFailure:
            raise errors.InvalidState("the state was not issued by this service") from None
        if not isinstance(claims.get("n"), str):
            raise errors.InvalidState("the state was not issued by this service")
        return claims

    async def take(self, claims: dict[str, Any], binding: str | None) -> dict[str, Any]:
        """The state's record, used up, when it has not expired and `binding` started it.

        A state started in another browser is refused (BrowserMismatch) and left in place
        for the browser that started it; an expired one is deleted.
        """
        key = self.keys.state(str(claims["n"]))
        if expired(claims, self.clock.now_ms()):
            await self.redis.delete(key)
            raise errors.InvalidState("this sign-in took too long; please start again")
        raw = await self.redis.get(key)
        if raw is None:
            raise errors.InvalidState("this sign-in was already used or has expired")
        record: dict[str, Any] = orjson.loads(raw)
        if not matches(binding, record.get("binding")):
            raise errors.BrowserMismatch(
                "this sign-in was started in another browser, or this browser did not keep "
                "its cookie; please start again, in one browser"
            )
        if await self.redis.getdel(key) is None:  # another callback of this browser was first
            raise errors.InvalidState("this sign-in was already used or has expired")
        return record
