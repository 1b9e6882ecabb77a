"""A bare aiohttp app answering every GET with a constant JSON body of a given size."""

from __future__ import annotations

import argparse

from aiohttp import web


def create_app(size: int) -> web.Application:
    """An app whose only handler returns `size` bytes of constant JSON."""
    padding = max(size - len(b'{"p":""}'), 0)
    body = b'{"p":"' + b"x" * padding + b'"}'

    async def constant(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app = web.Application()
    app.router.add_get("/{tail:.*}", constant)
    return app


def main() -> None:
    """Serve the bare app on 127.0.0.1 (default loop policy and run_app, like the service)."""
    args = argparse.ArgumentParser(description=__doc__)
    args.add_argument("--port", type=int, required=True)
    args.add_argument("--size", type=int, required=True)
    ns = args.parse_args()
    web.run_app(create_app(ns.size), host="127.0.0.1", port=ns.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
