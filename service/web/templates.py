"""Where the Jinja2 templates (and the settings pages' stylesheet) are."""

from __future__ import annotations

from pathlib import Path


def templates_dir() -> Path:
    """Inside the installed package, or the repo's templates/."""
    packaged = Path(__file__).resolve().parent.parent / "templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parents[2] / "templates"
