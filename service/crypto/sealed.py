"""A record with sealed (encrypted) fields, and what lists every such record.

The stores declare their own sealed records (service.account_record, service.apps,
service.settings); service.sealed_records lists them all for key rotation and backup.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Record:
    """One Redis hash holding encrypted fields; `name` is safe to print (never a value).

    `aads[i]` is the associated data `fields[i]` is sealed with (binding it to the record).
    """

    key: str
    name: str
    fields: tuple[str, ...]
    aads: tuple[str, ...]

    def aad(self, field: str) -> str:
        """The associated data a field of this record is bound to (as its store seals it)."""
        return self.aads[self.fields.index(field)]


def bound_record(key: str, name: str, fields: tuple[str, ...]) -> Record:
    """A record whose fields are each bound to '<name>:<field>' (accounts, apps)."""
    return Record(key, name, fields, tuple(f"{name}:{field}" for field in fields))


class Catalogue(Protocol):
    """Every record with sealed fields, in batches, and about how many there are."""

    def records(self, batch: int) -> AsyncIterator[list[Record]]:
        """Every record, `batch` at a time."""
        ...

    async def count(self) -> int:
        """About how many records `records` yields (for a progress bar)."""
        ...
