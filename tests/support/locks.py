"""Readers of the lock files (requirements/*.lock) and of what pyproject.toml asks for."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)")


@dataclass(frozen=True)
class Pin:
    """One locked distribution: its version, the hashes pip checks, and its marker."""

    version: str
    hashes: tuple[str, ...]
    marker: str


def normalized(name: str) -> str:
    """A distribution name as pip compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_pins(path: Path) -> dict[str, Pin]:
    """Every `name==version` of a lock file, continuation lines joined, by normalized name."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins: dict[str, Pin] = {}
    for line in text.splitlines():
        found = PIN.match(line)
        if found is None:
            continue
        hashes = tuple(re.findall(r"--hash=(sha256:[0-9a-f]{64})", line))
        marker = line.partition(";")[2].split("--hash")[0].strip()
        pins[normalized(found[1])] = Pin(found[2], hashes, marker)
    return pins


def pyproject() -> dict[str, object]:
    """pyproject.toml, parsed."""
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def asked_pins(*extras: str) -> dict[str, str]:
    """The `name==version` requirements of the project (and of `extras`), by normalized name."""
    project = pyproject()["project"]
    assert isinstance(project, dict)
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    asked: dict[str, str] = {}
    for requirement in wanted:
        found = PIN.match(requirement)
        assert found is not None, f"{requirement!r} is not pinned with =="
        asked[normalized(found[1])] = found[2]
    return asked
