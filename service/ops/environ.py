"""Where the CLI's commands find their configuration: the environment, completed from ./var/."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from service.config import Config, ConfigError

VAR_DIR = Path("var")


def dev_environ() -> dict[str, str]:
    """The environment, completed from ./var/ (left there by `tokenbroker dev`) when unset."""
    env = dict(os.environ)
    url_file, key_file = VAR_DIR / "redis.url", VAR_DIR / "secret.key"
    if not env.get("REDIS_URL") and url_file.exists():
        env["REDIS_URL"] = url_file.read_text().strip()
    if not env.get("TOKENBROKER_SECRET") and key_file.exists():
        env["TOKENBROKER_SECRET"] = key_file.read_text().strip()
    return env


def load_config(env: dict[str, str] | None = None) -> Config:
    """Config from `env` (default: dev_environ()); a bad variable exits 2 naming it."""
    try:
        return Config.from_env(env if env is not None else dev_environ())
    except ConfigError as exc:
        print(f"tokenbroker: configuration error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
