"""Operations commands of `tokenbroker`: `keys status|rotate`, `export FILE`, `import FILE`."""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from redis.asyncio import Redis

from service.clock import SystemClock
from service.config import Config
from service.crypto.cipher import Cipher, key_id
from service.crypto.rotation import KeyRotation
from service.ops.backup_format import atomic_output
from service.ops.export import Exporter
from service.ops.restore import Importer, Timing
from service.progress import Progress
from service.sealed_records import SealedRecords
from service.store.keys import Keys
from service.store.scripts import Scripts

Command = Callable[[Config, Keys, Any], Awaitable[int]]
Runner = Callable[[Command], int]


def add_parsers(sub: Any) -> None:
    """Add the admin commands to the top-level sub-parsers."""
    keys_p = sub.add_parser("keys", help="encryption keys: status, rotate")
    keys_sub = keys_p.add_subparsers(dest="keys_cmd", required=True)
    status = keys_sub.add_parser("status", help="count encrypted values under each key id")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    rotate = keys_sub.add_parser(
        "rotate", help="re-encrypt every value under TOKENBROKER_SECRET (online, resumable)"
    )
    sub.add_parser(
        "export", help="write apps and accounts to FILE (JSON lines, secrets stay encrypted)"
    ).add_argument("file", type=Path)
    imp = sub.add_parser("import", help="restore from FILE written by export, or EmailEngine")
    imp.add_argument("file", type=Path, nargs="?")
    _add_emailengine_options(imp)
    for parser in (status, rotate, sub.choices["export"], sub.choices["import"]):
        parser.add_argument("--batch", type=int, default=500, help="records per round trip")


def _add_emailengine_options(imp: Any) -> None:
    imp.add_argument(
        "--from-emailengine",
        metavar="REDIS_URL",
        help="import from a running EmailEngine's Redis (read only; EENGINE_SECRET from the "
        "environment or a prompt)",
    )
    imp.add_argument("--prefix", default="", help="EmailEngine's Redis key prefix")
    imp.add_argument("--dry-run", action="store_true", help="only print what would be imported")
    imp.add_argument("--json", action="store_true", help="print the report as one JSON object")


def handlers(run: Runner) -> dict[str, Callable[[argparse.Namespace], int]]:
    """The admin commands' handlers; `run` gives each a Config, Keys and Redis client."""
    return {
        "keys": lambda args: run(functools.partial(_keys, args)),
        "export": lambda args: _export(args, run),
        "import": lambda args: _import(args, run),
    }


def _cipher(config: Config) -> Cipher:
    return Cipher(config.secret_key, config.old_secret_keys)


async def _keys(args: argparse.Namespace, config: Config, keys: Keys, redis: Redis) -> int:
    rotation = KeyRotation(redis, Scripts(redis), _cipher(config), SealedRecords(redis, keys))
    progress = Progress(f"keys {args.keys_cmd}", await rotation.total())
    if args.keys_cmd == "status":
        counts = await rotation.status(args.batch, progress)
        progress.finish()
        _print_status(config, dict(counts), args.json)
        return 0
    stats = await rotation.rotate(args.batch, progress)
    progress.finish(f"{stats.rotated} values re-encrypted")
    print(
        f"re-encrypted {stats.rotated} values in {stats.records} records under key "
        f"{rotation.cipher.current_id}; {stats.retried} records read again after a concurrent write"
    )
    for kid, count in sorted(stats.unreadable.items()):
        print(
            f"tokenbroker: {count} values under key id {kid} decrypt with no configured key: "
            "add that key to TOKENBROKER_OLD_SECRETS and run again",
            file=sys.stderr,
        )
    if stats.changing:
        print(f"tokenbroker: {stats.changing} records kept changing; run again", file=sys.stderr)
    return 0 if stats.complete else 1


def _print_status(config: Config, counts: dict[str, int], as_json: bool) -> None:
    """Print each key id with its count: the current one, old ones, unknown ones found."""
    roles = {key_id(k): "old" for k in config.old_secret_keys}
    roles[key_id(config.secret_key)] = "current"
    rows = [
        {"keyId": kid, "role": roles.get(kid, "unknown"), "values": counts.get(kid, 0)}
        for kid in sorted(set(roles) | set(counts))
    ]
    if as_json:
        current = key_id(config.secret_key)
        print(orjson.dumps({"current": current, "keys": rows}).decode())
        return
    print(f"{'key id':<10}{'values':>10}  role")
    for row in rows:
        print(f"{row['keyId']:<10}{row['values']:>10}  {row['role']}")


def _export(args: argparse.Namespace, run: Runner) -> int:
    """Export to FILE.partial, renamed to FILE only when complete."""
    with atomic_output(args.file) as out:
        return run(functools.partial(_export_to, args, out))


async def _export_to(
    args: argparse.Namespace, out: Any, config: Config, keys: Keys, redis: Redis
) -> int:
    exporter = Exporter(redis, keys, _cipher(config), SystemClock())
    progress = Progress("export", await exporter.total())
    stats = await exporter.export(out, args.batch, progress)
    progress.finish()
    print(
        f"exported {stats.apps} apps and {stats.accounts} accounts to {args.file} (secrets under "
        f"key {exporter.cipher.current_id}; {stats.resealed} re-encrypted from old keys)"
    )
    return 0


def _import(args: argparse.Namespace, run: Runner) -> int:
    """Import from FILE, read line by line, or from EmailEngine."""
    if args.from_emailengine:
        if args.file is not None:
            raise ValueError("give FILE or --from-emailengine, not both")
        from service.ops.emailengine import run_import

        clock = SystemClock()
        return run(lambda config, keys, redis: run_import(args, config, keys, redis, clock))
    if args.file is None or args.dry_run or args.prefix:
        raise ValueError("import FILE takes no --dry-run or --prefix (they are for EmailEngine)")
    with args.file.open("rb") as source:
        return run(functools.partial(_import_from, args, source))


async def _import_from(
    args: argparse.Namespace, source: Any, config: Config, keys: Keys, redis: Redis
) -> int:
    timing = Timing(config.refresh_lead_s, config.keepalive_s)
    importer = Importer(redis, keys, Scripts(redis), _cipher(config), SystemClock(), timing)
    progress = Progress("import", args.file.stat().st_size, counts=False)  # bytes read
    stats = await importer.restore(source, args.batch, progress)
    progress.finish()
    print(
        f"imported {stats.apps} apps and {stats.accounts} accounts from {args.file} "
        f"({stats.resealed} values re-encrypted under key {importer.cipher.current_id})"
    )
    return 0
