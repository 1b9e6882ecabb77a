"""A progress line on stderr for long admin commands, redrawn in place with a carriage return."""

from __future__ import annotations

import sys
import time
from typing import TextIO

BAR_WIDTH = 30


class Progress:
    """Counts work done towards a total (maybe unknown) and redraws at most every interval."""

    def __init__(
        self,
        label: str,
        total: int | None,
        stream: TextIO | None = None,
        interval_s: float = 0.2,
        counts: bool = True,
    ) -> None:
        self.label, self.total, self.done, self.counts = label, total, 0, counts
        self.stream = stream if stream is not None else sys.stderr
        self.interval_s = interval_s
        self.note = ""
        self._drawn_at = 0.0
        self._width = 0

    def advance(self, amount: int = 1, note: str | None = None) -> None:
        """Count `amount` more units of work; redraw when the interval has passed."""
        self.done += amount
        if note is not None:
            self.note = note
        now = time.monotonic()
        if now - self._drawn_at >= self.interval_s:
            self._drawn_at = now
            self._draw()

    def finish(self, note: str | None = None) -> None:
        """Draw the final state and end the line."""
        if note is not None:
            self.note = note
        self._draw()
        self.stream.write("\n")
        self.stream.flush()

    def line(self) -> str:
        """The current progress line (without the carriage return)."""
        if self.total:
            share = min(self.done / self.total, 1.0)
            filled = int(share * BAR_WIDTH)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            text = f"{self.label} [{bar}] {int(share * 100):3d}%"
            if self.counts:
                text += f" {self.done}/{self.total}"
        else:
            text = f"{self.label} {self.done}"
        return f"{text} {self.note}".rstrip()

    def _draw(self) -> None:
        text = self.line()
        self.stream.write("\r" + text + " " * max(0, self._width - len(text)))
        self._width = len(text)
        self.stream.flush()
