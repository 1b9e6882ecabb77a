"""The worker's heartbeat file, read by `tokenbroker worker --check` (a liveness probe)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def beat(path: str) -> None:
    """Record that the worker loop is alive now (atomic replace of the file)."""
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}")
    temporary.write_text(f"{time.time():.3f} {os.getpid()}\n")
    temporary.replace(target)


def is_healthy(path: str, within_s: float) -> bool:
    """True when some worker on this host beat within the last `within_s` seconds."""
    try:
        stamp = float(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return False
    return time.time() - stamp <= within_s
