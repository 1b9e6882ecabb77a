"""The export file format (JSON lines) and the checks both export and import make on records."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from service import validate
from service.account_record import FIELDS, STATUSES, Status
from service.crypto.cipher import Cipher, DecryptError
from service.crypto.sealed import Record
from service.errors import Fault, InvalidInput

FORMAT = "tokenbroker-export"
VERSION = 1


class BackupError(Fault):
    """A file or record cannot be exported or imported; the message names it, never a secret."""


def line(kind: str, **body: Any) -> bytes:
    """One line of the file: a JSON object with its `type` first."""
    return orjson.dumps({"type": kind, **body}, option=orjson.OPT_APPEND_NEWLINE)


def reseal(record: Record, fields: dict[str, str], cipher: Cipher) -> int:
    """Check that every sealed field decrypts; re-encrypt old-key values under the current key.

    Changes `fields` in place and returns how many values were re-encrypted.
    """
    resealed = 0
    for name in record.fields:
        value = fields.get(name)
        if not value:
            continue
        aad, kid = record.aad(name), cipher.key_id_of(value)
        try:
            plain = cipher.decrypt(value, aad)
        except DecryptError:
            raise BackupError(
                f"{record.name}: {name} does not decrypt with any configured key (key id {kid!r}); "
                "set the key it was encrypted with in TOKENBROKER_SECRET or TOKENBROKER_OLD_SECRETS"
            ) from None
        if kid != cipher.current_id:
            fields[name] = cipher.encrypt(plain, aad)
            resealed += 1
    return resealed


def check_account(account_id: object, fields: object) -> tuple[str, dict[str, str]]:
    """Validate an account line's id and record; returns them typed."""
    record = _string_map(fields)
    try:
        checked = validate.account_id(account_id)
    except InvalidInput as exc:
        raise BackupError(f"account id: {exc}") from None
    if record.get("account") != checked or not record.get("app"):
        raise BackupError(f"account {checked!r}: the record lacks its id or app")
    if record.get("status", Status.ACTIVE) not in STATUSES:
        raise BackupError(f"account {checked!r}: unknown status")
    unknown = sorted(set(record) - FIELDS)
    if unknown:
        raise BackupError(f"account {checked!r}: unknown fields {', '.join(unknown)}")
    return checked, record


def check_app(app_id: object, fields: object) -> tuple[str, dict[str, str]]:
    """Validate an app line's id and record; returns them typed."""
    record = _string_map(fields)
    try:
        checked = validate.app_id(app_id)
    except InvalidInput as exc:
        raise BackupError(f"app id: {exc}") from None
    if record.get("id") != checked or not record.get("provider"):
        raise BackupError(f"app {checked!r}: the record lacks its id or provider")
    return checked, record


def _string_map(fields: object) -> dict[str, str]:
    if not isinstance(fields, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in fields.items()
    ):
        raise BackupError("a record must be an object of strings")
    return fields


@contextlib.contextmanager
def atomic_output(path: Path) -> Iterator[IO[bytes]]:
    """Write to PATH.partial (mode 0600), renamed to PATH only when the block succeeds."""
    partial = path.with_name(path.name + ".partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
