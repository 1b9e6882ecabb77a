"""Loads the Lua scripts in service/store/lua/ and registers them with a Redis client."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript

SCRIPT_NAMES = (
    "account_save",
    "account_store_tokens",
    "account_mark_reauth",
    "account_note_failure",
    "account_delete",
    "lock_take",
    "lock_release",
    "lock_extend",
    "app_save",
    "app_flag",
    "schedule_claim",
    "rate_take",
    "webhook_delivered",
    "webhook_failed",
    "webhook_redeliver",
    "hash_swap_fields",
    "account_restore",
    "apitoken_touch",
    "login_reserve",
    "login_succeeded",
    "account_search_index",
    "account_update_profile",
    "app_credential_notice",
    "account_grant_notice",
    "account_store_resource",
    "audit_append",
)


INCLUDE = re.compile(r"^-- include: (\w+)\b.*$", re.MULTILINE)


def script_source(name: str) -> str:
    """Return the text of service/store/lua/<name>.lua with its includes filled in.

    A line `-- include: X` becomes the text of X.lua: Redis scripts cannot load one another,
    so functions several scripts need are written once and put in at load time.
    """
    folder = resources.files("service.store.lua")
    text = folder.joinpath(f"{name}.lua").read_text()
    return INCLUDE.sub(
        lambda m: folder.joinpath(f"{m.group(1)}.lua").read_text().rstrip("\n"), text
    )


class Scripts:
    """The registered scripts; each is called with keys and args (EVALSHA, EVAL on NOSCRIPT)."""

    def __init__(self, redis: Redis) -> None:
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(script_source(name)) for name in SCRIPT_NAMES
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """Run script `name` with KEYS and ARGV."""
        return await self._scripts[name](keys=keys, args=args)

    async def queue(self, pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
        """Add script `name` to a pipeline; its execute() loads scripts the server lacks."""
        if isinstance(pipe, Pipeline):
            await self._scripts[name](keys=keys, args=args, client=pipe)
        else:  # a cluster pipeline cannot load scripts at execute(): send the source
            pipe.eval(self._scripts[name].script, len(keys), *keys, *args)
