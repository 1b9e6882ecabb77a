"""PromQL for tests: the metric names an expression reads, and the names an exposition serves."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "tokenbroker.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"

# Strings, label matchers and ranges are skipped whole; numbers and durations too (`5m`, `1e3`).
TOKEN = re.compile(
    r"""
      "(?:\\.|[^"\\])*" | '(?:\\.|[^'\\])*' | `[^`]*`
    | \{[^}]*\} | \[[^\]]*\]
    | \d[\d.]*(?:[eE][+-]?\d+)?[smhdwy]*
    | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    | \S
    """,
    re.VERBOSE,
)
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = {"bool", "offset", "and", "or", "unless", "atan2", "inf", "nan", "start", "end"}
# Series that Prometheus makes itself for every target rather than reading them from it.
SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
# The sample names of a metric family of each type (counter names lose `_total` when parsed).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def metric_names(expr: str) -> set[str]:
    """The metric names `expr` selects (not functions, aggregations, keywords or label names)."""
    tokens = [(m.group(0), m.group("name")) for m in TOKEN.finditer(expr)]
    names: set[str] = set()
    skip_list = False
    for i, (text, name) in enumerate(tokens):
        after = tokens[i + 1][0] if i + 1 < len(tokens) else ""
        if skip_list:
            skip_list = text != ")"
            continue
        if name is None:
            continue
        lowered = name.lower()
        if lowered in LABEL_LISTS:
            skip_list = after == "("
        elif after != "(" and lowered not in AGGREGATIONS and lowered not in KEYWORDS:
            names.add(name)
    return names


def served_names(exposition: str) -> set[str]:
    """Every sample name an exposition serves or declares (a family may have no sample yet)."""
    names: set[str] = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def dashboard() -> dict[str, Any]:
    """deploy/grafana/tokenbroker.json."""
    return dict(json.loads(DASHBOARD.read_text()))


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel of the dashboard, those inside collapsed rows included (rows themselves not)."""
    for item in board["panels"]:
        if item["type"] == "row":
            yield from item.get("panels", [])
        else:
            yield item


def panel_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) for every target of every panel."""
    return [(p["title"], t["expr"]) for p in panels(board) for t in p.get("targets", [])]


def variable_queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(variable name, PromQL) of the query variables: label_values(EXPR, label) gives EXPR."""
    found = []
    for variable in board["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        text = query["query"] if isinstance(query, dict) else str(query)
        match = re.fullmatch(r"label_values\((.+),\s*\w+\)", text.strip())
        found.append((variable["name"], match.group(1) if match else text))
    return found


def alert_rules() -> list[dict[str, Any]]:
    """The rules of deploy/prometheus/alerts.yml, all groups."""
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def as_prometheus_query(expr: str, rate_interval: str = "1m") -> str:
    """A panel's expression with Grafana's variables replaced, for Prometheus' own API."""
    for variable, value in (("$__rate_interval", rate_interval), ("$__interval", rate_interval)):
        expr = expr.replace(variable, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # $app and the like: every value
