"""Export files of many accounts for `make bench-scale`, written from one stored template."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from service.clock import iso
from service.crypto.cipher import Cipher
from service.ops.backup_format import FORMAT, VERSION, line
from service.sealed_records import account_record
from service.store.keys import Keys

DROPPED = ("refreshedAt", "lastError", "attempts")  # a fresh import has refreshed nothing yet
FAR_MS = (6 * 3_600_000, 24 * 3_600_000)  # expiry spread: due well after any bench phase


@dataclass(frozen=True)
class Template:
    """One stored account's fields, its sealed values decrypted once (never printed)."""

    fields: dict[str, str]
    plain: dict[str, str]  # sealed field name -> plaintext

    @classmethod
    def of(cls, keys: Keys, cipher: Cipher, account: str, fields: dict[str, str]) -> Template:
        """Read a stored account's hash into a template."""
        record = account_record(keys, account)
        plain = {
            name: cipher.decrypt(fields[name], record.aad(name))
            for name in record.fields
            if fields.get(name)
        }
        kept = {k: v for k, v in fields.items() if k not in DROPPED}
        return cls(kept, plain)


def account_id(index: int) -> str:
    """The id of the bench's account number `index`."""
    return f"scale-{index:07d}"


def write_accounts(
    path: Path,
    indexes: range,
    template: Template,
    keys: Keys,
    cipher: Cipher,
    now_ms: int,
) -> None:
    """Write an export file holding accounts `indexes`, each sealed under its own id."""
    rng = random.Random(indexes.start)
    with path.open("wb") as out:
        out.write(
            line(
                "header",
                format=FORMAT,
                version=VERSION,
                keyId=cipher.current_id,
                created=iso(now_ms),
                prefix=keys.prefix,
            )
        )
        for index in indexes:
            account = account_id(index)
            record = account_record(keys, account)
            fields = dict(template.fields)
            fields["account"] = account
            fields["user"] = f"{account}@example.test"
            fields["expiresAt"] = str(now_ms + rng.randrange(*FAR_MS))
            fields["lifetimeMs"] = str(FAR_MS[1])
            for name, value in template.plain.items():
                fields[name] = cipher.encrypt(f"{value}-{index}", record.aad(name))
            out.write(line("account", id=account, record=fields))
        out.write(line("end", apps=0, accounts=len(indexes)))
