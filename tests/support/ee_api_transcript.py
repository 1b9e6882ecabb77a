"""The recorded EmailEngine transcript (dataset A): its entries by name, and a shape check."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "emailengine"
TRANSCRIPT = FIXTURES / "transcript-A.jsonl"
KINDS = {bool: "boolean", int: "number", float: "number", str: "string", list: "array"}


@functools.cache
def entries() -> dict[str, dict[str, Any]]:
    """Every exchange of transcript-A.jsonl by its unique name."""
    found = {}
    for line in TRANSCRIPT.read_bytes().splitlines():
        entry = orjson.loads(line)
        found[entry["name"]] = entry
    return found


def entry(name: str) -> dict[str, Any]:
    """One recorded exchange: method, path, query, requestBody, status, responseBody."""
    return entries()[name]


def kind(value: Any) -> str:
    """The JSON type of a value."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return KINDS[type(value)]


def shape_differences(
    recorded: Any, ours: Any, path: str = "", skip: frozenset[str] = frozenset()
) -> list[str]:
    """Where `ours` does not have the recorded JSON's shape: a key missing or another type.

    Our extra keys are additions and allowed; a recorded null matches any type (EmailEngine
    leaves unset values null). `skip` names paths (`a.b`) not compared. Lists compare their
    first items.
    """
    if path in skip or recorded is None:
        return []
    if kind(recorded) != kind(ours):
        return [f"{path or '.'}: {kind(recorded)} recorded, {kind(ours)} here"]
    found: list[str] = []
    if isinstance(recorded, dict):
        for key, value in recorded.items():
            sub = f"{path}.{key}" if path else key
            if key not in ours:
                found += [] if sub in skip else [f"{sub}: missing"]
            else:
                found += shape_differences(value, ours[key], sub, skip)
    elif isinstance(recorded, list) and recorded and ours:
        found += shape_differences(recorded[0], ours[0], f"{path}[]", skip)
    return found
