"""The developer's tools agree: lock files, the Makefile's install, the pre-commit hooks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.locks import REQUIREMENTS, ROOT, asked_pins, lock_pins, pyproject

VENV_BIN = Path(sys.executable).parent


def make(*args: str) -> list[str]:
    """The commands `make -n ARGS` would run, one a line."""
    shown = subprocess.run(
        ["make", "--no-print-directory", "-n", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return shown.stdout.splitlines()


def test_test_lock_pins_what_pyproject_asks_for() -> None:
    """requirements/test.lock holds every pin of pyproject (extras test, lint), with hashes."""
    pins = lock_pins(REQUIREMENTS / "test.lock")
    assert all(pin.hashes for pin in pins.values())
    for name, version in asked_pins("test", "lint").items():
        assert pins[name].version == version, f"{name}: run `make lock`"
    build = pyproject()["build-system"]
    assert isinstance(build, dict)
    (backend,) = build["requires"]  # installed from the lock: the editable install needs it
    assert f"hatchling=={pins['hatchling'].version}" == backend


def test_venv_installs_the_test_lock_then_the_project_alone() -> None:
    """`make venv` reinstalls when the lock changes: the lock with hashes, then -e . --no-deps."""
    commands = make("-W", "requirements/test.lock", "venv")
    locked = commands.index(
        ".venv/bin/python -m pip install --quiet --require-hashes -r requirements/test.lock"
    )
    project = commands.index(
        ".venv/bin/python -m pip install --quiet --no-deps --no-build-isolation -e ."
    )
    assert locked < project


def test_pre_commit_runs_every_check_of_make_lint() -> None:
    """Each command of `make lint` is a local pre-commit hook's; the config is valid."""
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    (repo,) = config["repos"]
    assert repo["repo"] == "local"  # nothing fetched when the hooks run
    entries = [hook["entry"] for hook in repo["hooks"]]
    assert all(hook["language"] == "system" for hook in repo["hooks"])
    lint = make("-o", ".venv/.installed", "lint")
    assert lint
    for command in lint:
        tool = " ".join(word for word in command.split() if word != ".")
        assert any(entry.startswith(tool) for entry in entries), f"no hook runs {command!r}"
    subprocess.run(
        [str(VENV_BIN / "pre-commit"), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        check=True,
        timeout=60,
    )
