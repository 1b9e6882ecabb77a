"""Draws the dashboard's panels, each at its grid place, from Prometheus' answers (matplotlib)."""

from __future__ import annotations

import math
import re
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, MaxNLocator

# (panel, [(legend, [(unix time, value)])]) for every panel, in the dashboard's order.
Series = list[tuple[str, list[tuple[float, float]]]]
BACKGROUND, PANEL, TEXT, GRID = "#111217", "#181b1f", "#ccccdc", "#2c3235"
COLOURS = ["#73bf69", "#f2cc0c", "#5794f2", "#ff9830", "#f2495c", "#b877d9", "#8ab8ff", "#fade2a"]
UNIT_HEIGHT_IN, WIDTH_IN = 0.34, 19.0


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legendFormat: {{label}} replaced by the series' label value."""
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template) or "value"


def formatter(unit: str | None) -> FuncFormatter:
    """Tick labels in the panel's unit (seconds, per second, percent, plain)."""

    def fmt(value: float, _: object) -> str:
        if unit == "percentunit":
            return f"{value * 100:.0f}%"
        if unit == "s":
            return f"{value * 1000:.0f} ms" if 0 < abs(value) < 1 else f"{value:g} s"
        if unit in ("reqps", "ops"):
            return f"{value:g}/s"
        return f"{value:g}"

    return FuncFormatter(fmt)


def clock(unix_time: float, _: object) -> str:
    """An x tick: the local time of day."""
    return time.strftime("%H:%M:%S", time.localtime(unix_time))


def place(figure: Any, grid: dict[str, int], total_units: int) -> Axes:
    """Axes at a panel's gridPos (24 columns; rows of UNIT_HEIGHT_IN), with a small margin."""
    left, width = grid["x"] / 24, grid["w"] / 24
    top, height = grid["y"] / total_units, grid["h"] / total_units
    pad_x, pad_top, pad_bottom = 0.032, 0.9 / total_units, 0.75 / total_units
    axes: Axes = figure.add_axes(
        (left + pad_x, 1 - top - height + pad_bottom, width - pad_x - 0.006,
         height - pad_top - pad_bottom)
    )  # fmt: skip
    return axes


def style(axes: Axes, title: str) -> None:
    """Grafana's dark panel look."""
    axes.set_facecolor(PANEL)
    axes.set_title(title, color=TEXT, fontsize=9, loc="left", fontweight="bold")
    axes.tick_params(colors=TEXT, labelsize=7)
    for spine in axes.spines.values():
        spine.set_color(GRID)
    axes.grid(color=GRID, linewidth=0.6)


def timeseries(axes: Axes, panel: dict[str, Any], series: Series) -> None:
    """Lines, one per series, a legend below, time on x."""
    unit = panel["fieldConfig"]["defaults"].get("unit")
    for i, (name, points) in enumerate(series):
        good = [(t, v) for t, v in points if not math.isnan(v)]
        if not good:
            continue
        times, values = [t for t, _ in good], [v for _, v in good]
        axes.plot(times, values, label=name, color=COLOURS[i % len(COLOURS)], lw=1.3)
    axes.yaxis.set_major_formatter(formatter(unit))
    axes.xaxis.set_major_formatter(FuncFormatter(clock))
    axes.xaxis.set_major_locator(MaxNLocator(5))
    axes.set_ylim(bottom=0)
    if axes.get_lines():
        axes.legend(loc="upper left", fontsize=6.5, frameon=False, labelcolor=TEXT, ncols=3)


def stat(axes: Axes, panel: dict[str, Any], series: Series) -> None:
    """The last value, large, green at 0 and red above (the panel's thresholds)."""
    last = [points[-1][1] for _, points in series if points]
    value = sum(last) if last else 0.0
    colour = "#73bf69" if value < 1 else "#f2495c"
    axes.text(0.5, 0.45, f"{value:g}", color=colour, fontsize=30, ha="center", va="center")
    axes.set_xticks([])
    axes.set_yticks([])
    axes.grid(False)


def draw(board: dict[str, Any], data: dict[int, Series], out: Path, caption: str) -> None:
    """Every row title and panel of `board` at its place; `data` maps panel id to its series."""
    head = 1  # grid units above the first row, for the caption
    total = head + max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in board["panels"])
    figure = plt.figure(figsize=(WIDTH_IN, total * UNIT_HEIGHT_IN), facecolor=BACKGROUND)
    figure.text(0.008, 1 - 0.7 / total, caption, color=TEXT, fontsize=11)
    for panel in board["panels"]:
        grid = {**panel["gridPos"], "y": panel["gridPos"]["y"] + head}
        if panel["type"] == "row":
            y = 1 - (grid["y"] + 0.75) / total
            figure.text(0.008, y, panel["title"], color=TEXT, fontsize=12, fontweight="bold")
            continue
        axes = place(figure, grid, total)
        style(axes, panel["title"])
        (stat if panel["type"] == "stat" else timeseries)(axes, panel, data.get(panel["id"], []))
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80, facecolor=BACKGROUND)
    plt.close(figure)
