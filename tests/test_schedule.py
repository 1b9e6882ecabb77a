"""The refresh schedule's claims: leases, and claim ids that make a repeated claim safe."""

from __future__ import annotations

from redis.asyncio import Redis

from service.schedule import Schedule, new_claim_id
from service.store.keys import Keys
from service.store.scripts import Scripts

NOW = 1_700_000_000_000
LEASE_MS = 30_000


async def due_accounts(redis: Redis, keys: Keys, count: int) -> dict[str, int]:
    """`count` accounts of partition 0, due one ms apart before NOW; id -> due."""
    dues = {f"acct{i:02d}": NOW - 100 + i for i in range(count)}
    await redis.zadd(keys.schedule(0), dues)
    return dues


async def test_repeated_claim_id_returns_the_same_accounts(redis: Redis) -> None:
    """A claim repeated with its id (its reply was lost) gets the same accounts, no others."""
    keys = Keys("tb", 1)
    schedule = Schedule(redis, keys, Scripts(redis))
    dues = await due_accounts(redis, keys, 5)
    claim_id = new_claim_id()
    first = await schedule.claim(0, NOW, LEASE_MS, 3, claim_id)
    assert first == [(a, dues[a]) for a in ("acct00", "acct01", "acct02")]
    again = await schedule.claim(0, NOW + 500, LEASE_MS, 3, claim_id)
    assert again == first, "the same accounts with their original due times"
    leased = await redis.zrangebyscore(keys.schedule(0), NOW + LEASE_MS, "+inf")
    assert sorted(leased) == ["acct00", "acct01", "acct02"], "claimed once, leased once"
    other = await schedule.claim(0, NOW + 500, LEASE_MS, 3, new_claim_id())
    assert [a for a, _ in other] == ["acct03", "acct04"], "a new id claims what is left"
    ttl = await redis.pttl(keys.claim(0, claim_id))
    assert 0 < ttl <= LEASE_MS, "the record lives as long as the lease"


async def test_empty_claim_leaves_no_record(redis: Redis) -> None:
    """A claim that found nothing records nothing: repeated later, it claims what came due."""
    keys = Keys("tb", 1)
    schedule = Schedule(redis, keys, Scripts(redis))
    claim_id = new_claim_id()
    assert await schedule.claim(0, NOW, LEASE_MS, 3, claim_id) == []
    assert not await redis.exists(keys.claim(0, claim_id))
    dues = await due_accounts(redis, keys, 1)
    assert await schedule.claim(0, NOW, LEASE_MS, 3, claim_id) == [("acct00", dues["acct00"])]


async def test_claim_without_id_is_not_recorded(redis: Redis) -> None:
    """Without an id (webhook retries) the script claims afresh each time and keeps nothing."""
    keys = Keys("tb", 1)
    schedule = Schedule(redis, keys, Scripts(redis))
    await due_accounts(redis, keys, 4)
    first = await schedule.claim(0, NOW, LEASE_MS, 2)
    second = await schedule.claim(0, NOW, LEASE_MS, 2)
    assert [a for a, _ in first + second] == ["acct00", "acct01", "acct02", "acct03"]
    assert await redis.keys("tb:{p0}:claim:*") == []


async def test_claim_record_shares_the_partition_tag() -> None:
    """The claim record lives in its partition's hash tag, next to the schedule it claims."""
    keys = Keys("tb", 8)
    assert keys.claim(5, "abc") == "tb:{p5}:claim:abc"
    assert keys.claim(5, "abc").startswith(keys.schedule(5).removesuffix("sched"))
