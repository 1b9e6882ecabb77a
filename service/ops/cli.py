"""The `tokenbroker` command: the one composition root of web, worker and admin commands."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from service import logs, validate
from service.apitokens import SCOPES, ApiTokenStore
from service.clock import SystemClock
from service.config import Config, load_or_create_dev_secret
from service.crypto.cipher import Cipher
from service.ops import commands as cli_ops
from service.ops import config_docs
from service.ops import password as cli_password
from service.ops.environ import VAR_DIR, dev_environ, load_config
from service.ops.web_command import cmd_web
from service.outbound.session import outbound_session
from service.settings import DEFAULTS, SettingsStore, check_value
from service.store.connection import create_redis
from service.store.keys import Keys
from service.webhooks.headers import WebhookHeaders
from service.webhooks.service_secret import FIELD as SERVICE_SECRET
from service.webhooks.service_secret import ServiceSecret


def cmd_dev(args: argparse.Namespace) -> None:
    """Run everything for a first try: embedded Redis when REDIS_URL is unset, then web."""
    from service.store.embedded import RedisProcess

    env = dict(os.environ)
    server: RedisProcess | None = None
    if not env.get("REDIS_URL"):
        server = RedisProcess(VAR_DIR.resolve() / "redis")
        server.start()
        (VAR_DIR / "redis.url").write_text(server.url + "\n")
        env["REDIS_URL"] = server.url
        print(f"tokenbroker dev: embedded Redis at {server.url} (data in var/redis, AOF on)")
    if not env.get("TOKENBROKER_SECRET"):
        secret, created = load_or_create_dev_secret(VAR_DIR / "secret.key")
        env["TOKENBROKER_SECRET"] = secret
        if created:
            print(
                "tokenbroker dev: generated an encryption key into var/secret.key (mode 0600); "
                "set TOKENBROKER_SECRET in production"
            )
    config = load_config(env)
    logs.configure(config.log_format)
    print(f"tokenbroker dev: API on {config.base_url}  (health: {config.base_url}/health)")
    print("tokenbroker dev: the refresh worker runs in this process too")
    print(
        "tokenbroker dev: create an API token with: .venv/bin/tokenbroker token create --scope '*'"
    )
    cli_password.announce(config)
    sys.stdout.flush()
    from service.web.app import create_app

    app = create_app(config)
    app.cleanup_ctx.append(_worker_ctx(config))
    try:
        web.run_app(app, host=config.host, port=config.port, print=None, access_log=None)
    finally:
        if server is not None:
            server.stop()


def _worker_ctx(config: Config) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup context running a Worker beside the web app (dev: one process for all)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        async with _worker_resources(config) as worker:
            task = asyncio.create_task(worker.run())
            yield
            await worker.close()
            await task

    return ctx


@contextlib.asynccontextmanager
async def _worker_resources(config: Config, only: str | None = None) -> AsyncIterator[Any]:
    """A Worker with its own Redis client and HTTP session, closed on exit."""
    from workers.worker import Worker  # the CLI is the one place service/ may import workers/

    redis = create_redis(config)
    http = outbound_session(config)
    worker = Worker(config, redis, http, SystemClock(), only=only)
    try:
        yield worker
    finally:
        await asyncio.to_thread(worker.core.tracing.shutdown)  # the spans still buffered
        await http.close()
        await redis.aclose()


def cmd_worker(args: argparse.Namespace) -> int:
    """Run the worker process, or with --check tell whether one is healthy on this host."""
    config = load_config()
    if args.check:
        from workers.health import is_healthy

        within_s = max(10.0, 3 * config.poll_ms / 1000)
        return 0 if is_healthy(config.worker_health_file, within_s) else 1
    logs.configure(config.log_format)

    async def main() -> None:
        async with _worker_resources(config, args.only) as worker:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker.stop)
            metrics = await _serve_metrics(worker, config)
            try:
                await worker.run()
            finally:
                if metrics is not None:
                    await metrics.cleanup()

    asyncio.run(main())
    return 0


async def _serve_metrics(worker: Any, config: Config) -> web.AppRunner | None:
    """Serve the worker's /metrics on its host and port (none when no port is configured)."""
    host, port = config.worker_metrics_host, config.worker_metrics_port
    if port is None:
        return None

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=worker.metrics.render(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics, name="metrics")
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


def _run(coro_fn: Callable[[Config, Keys, Any], Awaitable[int]]) -> int:
    config = load_config()
    logs.configure(config.log_format)  # log lines on stderr: stdout is the command's output

    async def main() -> int:
        redis = create_redis(config, retries=3)
        try:
            return await coro_fn(
                config, Keys(config.redis_prefix, config.schedule_partitions), redis
            )
        finally:
            await redis.aclose()

    return asyncio.run(main())


def cmd_token(args: argparse.Namespace) -> int:
    """API tokens: create (printed once, last line), list, revoke."""

    async def go(config: Config, keys: Keys, redis: Any) -> int:
        store = ApiTokenStore(redis, keys)
        if args.token_cmd == "create":  # noqa: S105 - a sub-command name
            when = {"expires": args.expires}  # checked as the API checks times
            expires = validate.iso_time(when, "expires") if args.expires is not None else None
            token, meta = await store.create(
                args.scope,
                args.account,
                args.description,
                expires,
                SystemClock().now_ms(),
                args.resource,
            )
            print(
                f"created API token {meta.id} with scopes {', '.join(meta.scopes)}; "
                "it is shown only now:",
                file=sys.stderr,
            )
            print(token)
        elif args.token_cmd == "list":  # noqa: S105 - a sub-command name
            for meta in await store.all():
                print(orjson.dumps(meta.public()).decode())
        else:
            await store.revoke(args.id)
            print(f"revoked API token {args.id}")
        return 0

    return _run(go)


def cmd_settings(args: argparse.Namespace) -> int:
    """Read or change the operator's settings (the CLI may enable the token endpoint)."""

    async def go(config: Config, keys: Keys, redis: Any) -> int:
        store = SettingsStore(redis, keys)
        if args.settings_cmd == "get":
            values = await store.all()
            shown = values if args.key is None else {args.key: values.get(args.key)}
            print(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode())
            return 0
        try:
            value = orjson.loads(args.value)
        except orjson.JSONDecodeError:
            value = args.value
        value = check_value(args.key, value, allow_private=config.allow_private_urls)
        cipher = Cipher(config.secret_key, config.old_secret_keys)
        sealers = WebhookHeaders(redis, keys, cipher), ServiceSecret(redis, keys, cipher)
        shown = await store.update({args.key: value}, *sealers)
        print(f"{args.key} = {orjson.dumps(shown[args.key]).decode()}")
        if args.key != SERVICE_SECRET and isinstance(shown[SERVICE_SECRET], str):
            print(f"{SERVICE_SECRET} (generated, shown once) = {shown[SERVICE_SECRET]}")
        return 0

    return _run(go)


def parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    top = argparse.ArgumentParser(prog="tokenbroker", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    web_p = sub.add_parser("web", help="run the web process")
    web_p.add_argument("--host")
    web_p.add_argument("--port", type=int)
    web_p.add_argument(
        "--processes",
        default="1",
        help="web processes sharing the port (SO_REUSEPORT); a number or auto (one per core)",
    )
    web_p.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    web_p.add_argument(
        "--check", action="store_true", help="exit 0 if the web process on this host answers"
    )
    sub.add_parser("dev", help="run web and worker together (embedded Redis unless REDIS_URL)")
    worker_p = sub.add_parser("worker", help="run the refresh worker")
    worker_p.add_argument(
        "--check", action="store_true", help="exit 0 if a worker on this host is healthy"
    )
    worker_p.add_argument(
        "--only", choices=("refresh", "webhooks"), help="run one loop instead of both"
    )
    tok = sub.add_parser("token", help="manage API tokens")
    tok_sub = tok.add_subparsers(dest="token_cmd", required=True)
    create = tok_sub.add_parser("create", help="create a token; prints it as the last line")
    create.add_argument("--scope", action="append", required=True, choices=SCOPES)
    create.add_argument("--account")
    create.add_argument("--description")
    create.add_argument("--expires", help="ISO 8601 time, e.g. 2030-01-01T00:00:00Z")
    create.add_argument(
        "--resource",
        action="append",
        help="limit the token endpoint to this resource (default, outlook, graph or an "
        "audience URI); repeat for more",
    )
    tok_sub.add_parser("list", help="list tokens (never the tokens themselves)")
    revoke = tok_sub.add_parser("revoke", help="revoke a token by id")
    revoke.add_argument("id")
    st = sub.add_parser("settings", help="read or change settings")
    st_sub = st.add_subparsers(dest="settings_cmd", required=True)
    get = st_sub.add_parser("get")
    get.add_argument("key", nargs="?", choices=sorted(DEFAULTS))
    put = st_sub.add_parser("set")
    put.add_argument("key", choices=sorted(DEFAULTS))
    put.add_argument("value", help="a JSON value (true, false, [..]) or a string")
    cli_ops.add_parsers(sub)
    cli_password.add_parser(sub)
    config_docs.add_parser(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `tokenbroker` console script."""
    args = parser().parse_args(argv)
    handlers: dict[str, Callable[[argparse.Namespace], Any]] = {
        "web": cmd_web,
        "worker": cmd_worker,
        "dev": cmd_dev,
        "token": cmd_token,
        "settings": cmd_settings,
        **cli_ops.handlers(_run),
        "admin": cli_password.handler(_run),
        "config": config_docs.handler(dev_environ),
    }
    try:
        return int(handlers[args.command](args) or 0)
    except ValueError as exc:
        print(f"tokenbroker: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # errors.ApiError and store errors: say what, exit non-zero
        print(f"tokenbroker: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
