"""The admin dashboard: accounts, dying grants, apps with errors or dying credentials, webhooks."""

from __future__ import annotations

from typing import cast

from aiohttp import web
from redis.asyncio import Redis

from service.account_record import Account
from service.core import Core
from service.credential_watch import expiries
from service.grant_watch import LISTED, WEEK_MS, GrantWatch
from service.web.admin.render import page
from service.web.admin.session import admin_page
from service.web.appkeys import CORE
from service.webhooks.deliveries import Deliveries


@admin_page
async def dashboard(request: web.Request) -> web.StreamResponse:
    """The overview page."""
    core = request.app[CORE]
    now = core.clock.now_ms()
    deliveries = Deliveries(core.redis, core.keys, core.scripts)
    apps = await core.apps.all()
    backlog, oldest_ms = await deliveries.backlog(now)
    async with core.redis.pipeline(transaction=False) as pipe:
        for part in range(core.keys.partitions):
            pipe.zcount(core.keys.schedule(part), "-inf", now - 60_000)
        overdue = sum(await pipe.execute())
    context = {
        "counts": await core.accounts.count_by_status(),
        "apps_with_errors": [a for a in apps if "error" in a.fields],
        "expiring": [e for a in apps for e in expiries(a, now, core.config) if e.stage != "ok"],
        "dying": await dying_grants(core),
        "backlog": backlog,
        "oldest_s": oldest_ms // 1000,
        "dead": await deliveries.dead_count(),
        "overdue": overdue,
        "workers": await _live_workers(core.redis, core.keys.workers, now),
        "settings": await core.settings.all(),
    }
    return await page(request, "dashboard.html", context)


async def dying_grants(core: Core) -> list[Account]:
    """The soonest grants that end within a week (the dashboard and the accounts page)."""
    return await GrantWatch(core.accounts, core.links, core.config, core.clock).dying(
        WEEK_MS, LISTED
    )


async def _live_workers(redis: Redis, key: str, now_ms: int) -> int:
    """Workers whose heartbeat reached Redis within the last minute."""
    beats = cast(dict[str, str], await redis.hgetall(key))
    return sum(1 for at in beats.values() if now_ms - int(at) <= 60_000)


async def admin_root(request: web.Request) -> web.StreamResponse:
    """/admin → /admin/."""
    raise web.HTTPSeeOther("/admin/")
