"""The configuration table rendered: README's environment table, the env example, a listing.

`python -m service.ops.config_docs` rewrites README.md's marked block and
deploy/tokenbroker.env.example from service/config_table.py (`--check`: only tell whether
they are current); `tokenbroker config` prints the listing of the values in effect.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from service.config import MASK, Config, ConfigError, mask_url, read
from service.config_table import SETTINGS, Setting

README_BEGIN = (
    "<!-- config:begin - generated from service/config_table.py by "
    "`make config-docs`; edit the table, not this block -->"
)
README_END = "<!-- config:end -->"
ENV_EXAMPLE_HEAD = """\
# Copy to deploy/tokenbroker.env (mode 0600, never committed) and fill in.
# Written by `make config-docs` from service/config_table.py: every variable is described in
# README.md, "Configuration (environment)", and `tokenbroker config` shows the values in effect.
"""
# The variables a deployment sets, each group with its advice and example values.
ENV_EXAMPLE_SET: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        'Redis, with AOF persistence and the ACL user "tokenbroker" (deploy/redis.conf); the '
        "password (hex: openssl rand -hex 32) is the one Redis was given for that user. "
        "compose.yaml builds this URL itself from REDIS_PASSWORD in deploy/.env; set it here "
        "for systemd.",
        (("REDIS_URL", "redis://tokenbroker:CHANGE-ME@redis:6379/0"),),
    ),
    (
        "32 random bytes, base64 (losing it loses every stored token: keep a copy in your "
        "secret store):\n"
        '  python3 -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"',
        (("TOKENBROKER_SECRET", ""),),
    ),
    (
        "During a key rotation: the previous key(s), comma-separated, used only to decrypt.",
        (("TOKENBROKER_OLD_SECRETS", ""),),
    ),
    (
        "The public https URL in front of the web processes (OAuth callback, hosted links).",
        (("TOKENBROKER_BASE_URL", "https://tokens.example.com"),),
    ),
    (
        "Fixed when data is first created: more partitions spread the schedule over Redis shards.",
        (("TOKENBROKER_SCHEDULE_PARTITIONS", "1"),),
    ),
    (
        "Reverse proxies (addresses or CIDRs, comma-separated) whose X-Forwarded-For names the "
        "client, so that the settings-page login limit tells clients apart. None by default.",
        (("TOKENBROKER_TRUSTED_PROXIES", ""),),
    ),
    (
        "The worker's Prometheus /metrics, without authentication: off while the port is unset, "
        "and bound to 127.0.0.1 unless the host says otherwise (0.0.0.0 only on a private "
        "network).",
        (("TOKENBROKER_WORKER_METRICS_PORT", ""), ("TOKENBROKER_WORKER_METRICS_HOST", "")),
    ),
)
WIDTH = 96


def env_text(value: Any) -> str:
    """A value as the environment spells it (keys never: they are masked)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        return MASK
    if isinstance(value, tuple):
        return ",".join(env_text(item) for item in value)
    return str(value)  # text, numbers, networks


def default_text(setting: Setting[Any]) -> str:
    """The default as the docs state it (Markdown)."""
    if setting.shown_default is not None:
        return setting.shown_default
    return "unset" if setting.default is None else f"`{env_text(setting.default)}`"


def values_text(setting: Setting[Any]) -> str:
    """What the variable takes (Markdown): its type with bounds or choices."""
    if setting.kind in ("integer", "number"):
        return f"{setting.kind} {env_text(setting.low)}–{env_text(setting.high)}"  # noqa: RUF001
    if setting.kind == "choice":
        return ", ".join(f"`{choice}`" for choice in setting.choices)
    return {
        "boolean": "`true` or `false`",
        "text": "text",
        "url": "http(s) URL",
        "redis_url": "Redis URL",
        "prefix": "letters, digits, `-`, `_`",
        "key": "base64 of 32 bytes",
        "keys": "base64 keys, comma-separated",
        "networks": "addresses or CIDRs, comma-separated",
    }[setting.kind]


def readme_table() -> str:
    """README's environment table, between its markers."""
    rows = [
        f"| `{s.name}` | {default_text(s)} | {values_text(s)} | {s.meaning} |" for s in SETTINGS
    ]
    head = ["| variable | default | values | meaning |", "|---|---|---|---|"]
    return "\n".join([README_BEGIN, *head, *rows, README_END]) + "\n"


def _comment(text: str) -> list[str]:
    """`text` as comment lines (a newline in it starts a new line)."""
    return [
        f"# {line}"
        for paragraph in text.splitlines()
        for line in textwrap.wrap(paragraph, WIDTH - 2, break_on_hyphens=False)
    ]


def env_example() -> str:
    """deploy/tokenbroker.env.example: what to set, then every other variable commented out."""
    lines = [ENV_EXAMPLE_HEAD.rstrip("\n")]
    named = set()
    for advice, pairs in ENV_EXAMPLE_SET:
        lines += ["", *_comment(advice), *(f"{name}={value}" for name, value in pairs)]
        named |= {name for name, _ in pairs}
    lines += ["", "# Every other variable, at its default: uncomment a line to change it."]
    for setting in SETTINGS:
        if setting.name not in named:
            values = "" if setting.kind == "text" else f"\nValues: {values_text(setting)}"
            about = f"{setting.meaning}{values}".replace("`", "")
            lines += ["", *_comment(about), f"#{setting.name}={env_text(setting.default)}"]
    return "\n".join(lines) + "\n"


def shown(setting: Setting[Any], value: Any) -> str:
    """A value in effect as `tokenbroker config` shows it: secrets masked, no URL passwords."""
    if setting.secret:
        return MASK if value not in (None, ()) else ""
    if setting.kind in ("url", "redis_url"):
        return mask_url(env_text(value))
    return env_text(value)


def listing(env: Mapping[str, str]) -> tuple[str, ConfigError | None]:
    """Every variable with its value in effect, default, values and meaning; and the error."""
    lines: list[str] = []
    for setting in SETTINGS:
        given = bool(env.get(setting.name, "").strip())
        try:
            value = f"{shown(setting, read(setting, env))}{'' if given else '  (default)'}"
        except ConfigError as exc:
            value = f"(invalid: {exc})"
        lines.append(f"{setting.name}={value}")
        about = [f"default: {default_text(setting)}; values: {values_text(setting)}"]
        about += textwrap.wrap(setting.meaning, WIDTH - 4, break_on_hyphens=False)
        lines += [f"    {line}".replace("`", "") for line in about]
    try:
        Config.from_env(env)
    except ConfigError as exc:
        return "\n".join(lines) + "\n", exc
    return "\n".join(lines) + "\n", None


def add_parser(sub: Any) -> None:
    """Add `config [--env-example]` to the top-level sub-parsers."""
    cfg = sub.add_parser(
        "config", help="list every variable: value in effect (secrets masked), default, meaning"
    )
    cfg.add_argument(
        "--env-example", action="store_true", help="print deploy/tokenbroker.env.example instead"
    )


def handler(environ: Callable[[], Mapping[str, str]]) -> Callable[[argparse.Namespace], int]:
    """`tokenbroker config`: the listing of `environ()`, exit 2 when the configuration is bad."""

    def run(args: argparse.Namespace) -> int:
        if args.env_example:
            print(env_example(), end="")
            return 0
        text, error = listing(environ())
        print(text, end="")
        if error is not None:
            print(f"tokenbroker: configuration error: {error}", file=sys.stderr)
            return 2
        return 0

    return run


def with_readme_table(readme: str) -> str:
    """`readme` with the block between the markers rendered anew."""
    start = readme.index(README_BEGIN)
    end = readme.index(README_END, start) + len(README_END) + 1
    return readme[:start] + readme_table() + readme[end:]


def main(argv: list[str] | None = None) -> int:
    """Rewrite (or with --check, compare) README.md's table and the env example."""
    top = argparse.ArgumentParser(prog="python -m service.ops.config_docs", description=__doc__)
    top.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    top.add_argument("--root", type=Path, default=Path(), help="the repository (default: .)")
    args = top.parse_args(argv)
    readme, example = args.root / "README.md", args.root / "deploy" / "tokenbroker.env.example"
    stale = []
    for path, render in ((readme, with_readme_table), (example, lambda _: env_example())):
        current = path.read_text()
        if render(current) != current:
            stale.append(str(path))
            if not args.check:
                path.write_text(render(current))
    verb = "out of date" if args.check else "rewritten"
    for path in stale:
        print(f"{path}: {verb} (from service/config_table.py)", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
