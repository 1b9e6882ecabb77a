"""deploy/grafana/tokenbroker.json: importable as it is, and every query reads served metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from service.core import Core
from service.store.embedded import RedisProcess
from tests.support.observed import Client, Observed, observed_service, traffic
from tests.support.processes import wait_until
from tests.support.prometheus import WEB_JOB, WORKER_JOB, Prometheus, scrape_config
from tests.support.promql import (
    SYNTHETIC,
    alert_rules,
    as_prometheus_query,
    dashboard,
    metric_names,
    panel_queries,
    panels,
    served_names,
    variable_queries,
)

Importer = Callable[..., Awaitable[dict[str, Any]]]
# What the operator asked to see (issue 14), by the metric each answer comes from.
WANTED = {
    "tokenbroker_accounts",
    "tokenbroker_refreshes_total",
    "tokenbroker_refresh_lag_seconds_bucket",
    "tokenbroker_schedule_depth",
    "tokenbroker_schedule_overdue",
    "tokenbroker_token_requests_total",
    "tokenbroker_token_request_seconds_bucket",
    "tokenbroker_cache_lookups_total",
    "tokenbroker_webhook_backlog",
    "tokenbroker_webhook_backlog_oldest_seconds",
    "tokenbroker_webhook_dead_letters",
    "tokenbroker_app_credentials_error",
    "tokenbroker_refresh_incidents_total",
    "tokenbroker_worker_last_beat_timestamp_seconds",
}


def datasources(node: Any) -> Iterator[dict[str, Any]]:
    """Every `datasource` object anywhere in the dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource" and isinstance(value, dict):
                yield value
            else:
                yield from datasources(value)
    elif isinstance(node, list):
        for item in node:
            yield from datasources(item)


def test_dashboard_is_importable_as_is() -> None:
    """A current schema, no hard-coded datasource (a variable), unique ids, a 24-column grid."""
    board = dashboard()
    assert board["schemaVersion"] >= 39
    assert board["id"] is None and board["uid"] == "tokenbroker"
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for source in datasources(board):
        assert source in (
            {"type": "prometheus", "uid": "${datasource}"},
            {"type": "grafana", "uid": "-- Grafana --"},  # the built-in annotations
        ), source
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for item in board["panels"]:
        grid = item["gridPos"]
        assert grid["x"] + grid["w"] <= 24, item["title"]
        mine = {(grid["y"] + r, grid["x"] + c) for r in range(grid["h"]) for c in range(grid["w"])}
        assert not mine & cells, f"{item['title']} overlaps another panel"
        cells |= mine
    for item in panels(board):
        refs = [t["refId"] for t in item["targets"]]
        assert refs and len(refs) == len(set(refs)), item["title"]
        assert item["description"], item["title"]


def test_dashboard_answers_the_operators_questions() -> None:
    """Accounts, refreshes, lag, schedule, token endpoint, cache, webhooks, apps, worker."""
    used = {name for _, expr in panel_queries(dashboard()) for name in metric_names(expr)}
    assert used >= WANTED, WANTED - used


def test_metric_names_of_promql() -> None:
    """The name extraction skips functions, aggregations, label lists, strings and ranges."""
    expr = (
        'histogram_quantile(0.95, sum by (le, app) (rate(a_bucket{x="y(z)"}[5m])))'
        " / on(job) group_left(app) b offset 1h > bool 1e3 or absent(c) unless time() - d"
    )
    assert metric_names(expr) == {"a_bucket", "b", "c", "d"}


@pytest.mark.timeout(90)
async def test_every_query_reads_metrics_web_or_worker_serve(
    client: Client, core: Core, redis_server: RedisProcess, tmp_path: Path, import_account: Importer
) -> None:
    """Each panel's and variable's metric names are served by a running web app or worker."""
    async with observed_service(client, core, redis_server.url, tmp_path, import_account) as seen:
        served = served_names(await seen.web_text()) | served_names(await seen.worker_text())
    board = dashboard()
    for where, expr in panel_queries(board) + variable_queries(board):
        unknown = metric_names(expr) - served - SYNTHETIC
        assert not unknown, f"{where}: {expr} reads {unknown}, which nothing serves"


async def empty_panels(prometheus: Prometheus) -> list[str]:
    """Titles of the panels none of whose queries returns a series now (fails on a bad query)."""
    empty = []
    at = time.time()
    for item in panels(dashboard()):
        results = []
        for target in item["targets"]:
            answer = await prometheus.query(as_prometheus_query(target["expr"]), at)
            assert answer["status"] == "success", f"{item['title']}: {target['expr']}: {answer}"
            results += answer["data"]["result"]
        if not results:
            empty.append(item["title"])
    return empty


@pytest.mark.timeout(120)
async def test_every_panel_shows_data_in_prometheus(
    client: Client, core: Core, redis_server: RedisProcess, tmp_path: Path, import_account: Importer
) -> None:
    """README's Prometheus config for real: every panel has data, the rules load, none fires."""
    async with observed_service(client, core, redis_server.url, tmp_path, import_account) as seen:
        config = scrape_config(seen.web_target, seen.token_file, seen.worker_target, 0.5)
        prometheus = Prometheus.start(config, tmp_path / "prometheus")
        try:
            await prometheus.wait_up({WEB_JOB, WORKER_JOB})
            await run_until_panels_filled(seen, prometheus)
            rules = await prometheus.alerting_rules()
        finally:
            prometheus.stop()
    assert sorted(r["name"] for r in rules) == sorted(r["alert"] for r in alert_rules())
    assert [r["name"] for r in rules if r["state"] != "inactive"] == []


async def run_until_panels_filled(seen: Observed, prometheus: Prometheus) -> None:
    """Keep the token endpoint busy until every panel has data (rates need two scrapes)."""
    missing: list[str] = []

    async def filled() -> bool:
        await traffic(seen.client, seen.admin)
        missing[:] = await empty_panels(prometheus)
        return not missing

    await wait_until(
        filled,
        "every panel to show data",
        30,
        poll_s=0.5,
        workers=[seen.worker],
        diagnostics=lambda: f"empty: {missing}\n{prometheus.tail()}",
    )
