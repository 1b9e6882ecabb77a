"""README's table, the env example and `tokenbroker config`'s listing, rendered from the table."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from service.config import MASK, read
from service.config_table import SETTINGS, Setting
from service.ops.config_docs import (
    README_BEGIN,
    README_END,
    env_example,
    env_text,
    listing,
    main,
    readme_table,
)
from tests.support.deploy_files import DEPLOY, ROOT, config_variables, env_file_names

KEY = base64.b64encode(bytes(range(32))).decode()
OLD_KEY = base64.b64encode(bytes([7]) * 32).decode()
STALE = "run `make config-docs` to render it from service/config_table.py"


def readme_block(text: str) -> str:
    """The part of README's text from the begin marker to the end marker's line, inclusive."""
    start = text.index(README_BEGIN)
    return text[start : text.index(README_END, start) + len(README_END) + 1]


def test_readme_table_is_the_rendered_one() -> None:
    """README's environment table is exactly what the table renders."""
    assert readme_block((ROOT / "README.md").read_text()) == readme_table(), STALE


def test_env_example_is_the_rendered_one() -> None:
    """deploy/tokenbroker.env.example is exactly what the table renders."""
    assert (DEPLOY / "tokenbroker.env.example").read_text() == env_example(), STALE


def test_every_variable_read_is_documented() -> None:
    """Each variable Config reads has a README row and a line (set or commented) in the example."""
    block = readme_block((ROOT / "README.md").read_text())
    example = (DEPLOY / "tokenbroker.env.example").read_text()
    for name in config_variables():
        assert f"| `{name}` |" in block, name
        assert f"\n{name}=" in example or f"\n#{name}=" in example, name
    assert {n for n in config_variables() if n.startswith("TOKENBROKER_WEBHOOK_")} == {
        "TOKENBROKER_WEBHOOK_TIMEOUT_S",
        "TOKENBROKER_WEBHOOK_RETRY_BUDGET_S",
        "TOKENBROKER_WEBHOOK_RETRY_BASE_MS",
        "TOKENBROKER_WEBHOOK_LEASE_MS",
        "TOKENBROKER_WEBHOOK_CONCURRENCY",
    }


def test_env_example_sets_only_blanks_and_examples() -> None:
    """The example sets the variables to fill in; every other one is commented at its default."""
    assert env_file_names(DEPLOY / "tokenbroker.env.example") == {
        "REDIS_URL",
        "TOKENBROKER_SECRET",
        "TOKENBROKER_OLD_SECRETS",
        "TOKENBROKER_BASE_URL",
        "TOKENBROKER_SCHEDULE_PARTITIONS",
        "TOKENBROKER_TRUSTED_PROXIES",
        "TOKENBROKER_WORKER_METRICS_PORT",
        "TOKENBROKER_WORKER_METRICS_HOST",
    }
    assert "\n#TOKENBROKER_PORT=8080\n" in env_example()


@pytest.mark.parametrize("setting", [s for s in SETTINGS if not s.required], ids=lambda s: s.name)
def test_default_reads_back_as_itself(setting: Setting[Any]) -> None:
    """Each default, written as the docs and the example spell it, reads back as itself."""
    assert read(setting, {setting.name: env_text(setting.default)}) == setting.default


def test_listing_shows_value_default_and_meaning() -> None:
    """Each variable's line holds its value in effect; the next its default, values and meaning."""
    env = {"REDIS_URL": "redis://h:1/0", "TOKENBROKER_SECRET": KEY, "TOKENBROKER_PORT": "9090"}
    text, error = listing(env)
    assert error is None
    lines = text.splitlines()
    assert [line for line in lines if not line.startswith(" ")] == [
        line for line in lines if line.split("=", 1)[0] in {s.name for s in SETTINGS}
    ]
    port = lines.index("TOKENBROKER_PORT=9090")
    assert lines[port + 1] == "    default: 8080; values: integer 1–65535"  # noqa: RUF001
    assert lines[port + 2] == "    port the web process binds"
    assert "TOKENBROKER_HOST=127.0.0.1  (default)" in lines
    assert "TOKENBROKER_BASE_URL=http://127.0.0.1:9090  (default)" in lines


@pytest.mark.parametrize(
    "redis_url",
    [
        "redis://tokenbroker:pa55-word@redis:6379/0",
        "rediss://pa55-word@redis:6379/0",
        "redis://redis:6379/0?password=pa55-word&db=1",
        "redis+sentinel://:pa55-word@s1:26379,s2:26379/main",
        "redis+cluster://user:pa55-word@n1:7000,n2:7001",
    ],
)
def test_listing_masks_every_secret(redis_url: str) -> None:
    """Keys and Redis passwords never appear in the listing, only the mask does."""
    env = {"REDIS_URL": redis_url, "TOKENBROKER_SECRET": KEY, "TOKENBROKER_OLD_SECRETS": OLD_KEY}
    text, error = listing(env)
    assert error is None
    for secret in ("pa55-word", KEY, OLD_KEY, KEY[:12], OLD_KEY[:12]):
        assert secret not in text
    assert f"TOKENBROKER_SECRET={MASK}\n" in text
    assert f"TOKENBROKER_OLD_SECRETS={MASK}\n" in text
    assert MASK in text.splitlines()[0]


def test_listing_masks_a_bad_redis_url_too() -> None:
    """A malformed Redis URL is reported without its password."""
    env = {"REDIS_URL": "redis+sentinel://:pa55-word@s1:x/main", "TOKENBROKER_SECRET": KEY}
    text, error = listing(env)
    assert error is not None and "REDIS_URL" in str(error)
    assert "pa55-word" not in text and "pa55-word" not in str(error)


def test_listing_names_a_bad_variable() -> None:
    """A bad value is shown as invalid on its line and returned as the error, naming it."""
    text, error = listing({"REDIS_URL": "redis://h:1/0", "TOKENBROKER_SECRET": KEY,
                           "TOKENBROKER_LOG_FORMAT": "xml"})  # fmt: skip
    assert error is not None and "TOKENBROKER_LOG_FORMAT" in str(error)
    assert "TOKENBROKER_LOG_FORMAT=(invalid: TOKENBROKER_LOG_FORMAT must be one of" in text


def test_rewrite_and_check(tmp_path: Path) -> None:
    """--check finds a stale README or example and changes nothing; without it both are fixed."""
    (tmp_path / "deploy").mkdir()
    readme = (ROOT / "README.md").read_text()
    stale = readme.replace("| `TOKENBROKER_PORT` | `8080` |", "| `TOKENBROKER_PORT` | `80` |")
    (tmp_path / "README.md").write_text(stale)
    shutil.copy(DEPLOY / "tokenbroker.env.example", tmp_path / "deploy")
    example = tmp_path / "deploy" / "tokenbroker.env.example"
    example.write_text(example.read_text() + "EXTRA=1\n")
    assert main(["--check", "--root", str(tmp_path)]) == 1
    assert (tmp_path / "README.md").read_text() == stale
    assert main(["--root", str(tmp_path)]) == 0
    assert (tmp_path / "README.md").read_text() == readme
    assert example.read_text() == env_example()
    assert main(["--check", "--root", str(tmp_path)]) == 0
