"""`tokenbroker admin set-password` and the first-start admin password of `tokenbroker dev`."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from service.admin_auth import AdminAuth
from service.config import Config
from service.store.connection import create_redis
from service.store.keys import Keys

Command = Callable[[Config, Keys, Any], Awaitable[int]]
Runner = Callable[[Command], int]


def add_parser(sub: Any) -> None:
    """Add `admin set-password [--password-stdin]` to the top-level sub-parsers."""
    adm = sub.add_parser("admin", help="the settings pages' operator account")
    adm_sub = adm.add_subparsers(dest="admin_cmd", required=True)
    setpw = adm_sub.add_parser("set-password", help="set the admin password (prompted)")
    setpw.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )


def read_password(args: argparse.Namespace) -> str:
    """The new password: one line of stdin with --password-stdin, else asked twice."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New admin password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise ValueError("the passwords differ")
    return first


def handler(run: Runner) -> Callable[[argparse.Namespace], int]:
    """The `admin` command, running its Redis work through the CLI's runner."""

    def cmd_admin(args: argparse.Namespace) -> int:
        password = read_password(args)

        async def go(config: Config, keys: Keys, redis: Any) -> int:
            await AdminAuth(redis, keys).set_password(password)
            print("admin password set; every settings-page session was logged out")
            return 0

        return run(go)

    return cmd_admin


def announce(config: Config) -> None:
    """Print the settings page URL and, at first start, a generated password (terminal only)."""
    print(f"tokenbroker dev: settings pages on {config.base_url}/admin/  (user: admin)")

    async def initial() -> str | None:
        redis = create_redis(config, retries=3)
        try:
            keys = Keys(config.redis_prefix, config.schedule_partitions)
            return await AdminAuth(redis, keys).set_initial_password()
        finally:
            await redis.aclose()

    try:
        password = asyncio.run(initial())
    except Exception as exc:  # the web process says more; `admin set-password` works later
        print(f"tokenbroker dev: could not prepare the admin password: {type(exc).__name__}")
        return
    if password is not None:
        print(f"tokenbroker dev: generated admin password (shown only now): {password}")
    else:
        print("tokenbroker dev: admin password as set before (tokenbroker admin set-password)")
