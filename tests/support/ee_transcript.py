"""Entries of the recorded EmailEngine transcript (tests/fixtures/emailengine), by name."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emailengine"
TRANSCRIPT = FIXTURES / "transcript-A.jsonl"


@functools.cache
def entries() -> dict[str, dict[str, Any]]:
    """Every exchange of transcript A by its unique name."""
    lines = TRANSCRIPT.read_text(encoding="utf-8").splitlines()
    found = (json.loads(line) for line in lines if line.strip())
    return {entry["name"]: entry for entry in found}


def entry(name: str) -> dict[str, Any]:
    """One exchange: name, method, path, query, requestBody, status, responseBody, ..."""
    return entries()[name]


def named(prefix: str) -> list[str]:
    """The names that start with `prefix`, in recording order."""
    return [name for name in entries() if name.startswith(prefix)]


def same_shape(ours: object, theirs: object) -> list[str]:
    """Where `ours` lacks a key of `theirs` or holds another JSON type (extra keys are fine)."""
    if isinstance(theirs, dict):
        if not isinstance(ours, dict):
            return [f"object expected, got {type(ours).__name__}"]
        problems = [f"{key}: missing" for key in theirs if key not in ours]
        for key in theirs:
            if key in ours:
                problems += [f"{key}.{p}" for p in same_shape(ours[key], theirs[key])]
        return problems
    if isinstance(theirs, list):
        if not isinstance(ours, list):
            return [f"array expected, got {type(ours).__name__}"]
        return [p for a, b in zip(ours, theirs, strict=False) for p in same_shape(a, b)]
    if theirs is None or ours is None:
        return []
    if isinstance(theirs, bool) != isinstance(ours, bool) or type(theirs) is not type(ours):
        return [f"{type(theirs).__name__} expected, got {type(ours).__name__}"]
    return []
