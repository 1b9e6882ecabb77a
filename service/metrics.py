"""Prometheus metrics of one process, in a registry of its own (no import-time globals)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
INCIDENT_KINDS = (
    "answer_abandoned",
    "refused_after_lost_answer",
    "refused_trying_previous",
    "recovered_with_previous",
    "orphan_revoked",
    "replica_wait_timeout",
)
TOKEN_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The refresh metrics; web and worker each build one."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.refreshes = Counter(
            "tokenbroker_refreshes",
            "Refresh attempts by outcome",
            ["provider", "app", "outcome"],
            registry=self.registry,
        )
        self.refresh_seconds = Histogram(
            "tokenbroker_refresh_seconds",
            "Duration of one refresh (lock, provider, store)",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.lag_seconds = Histogram(
            "tokenbroker_refresh_lag_seconds",
            "Delay between due time and refresh start",
            buckets=LAG_BUCKETS,
            registry=self.registry,
        )
        self.incidents = Counter(
            "tokenbroker_refresh_incidents",
            "Refresh incidents: answer_abandoned, refused_after_lost_answer, "
            "refused_trying_previous, recovered_with_previous, orphan_revoked, "
            "replica_wait_timeout",
            ["kind"],
            registry=self.registry,
        )
        for kind in INCIDENT_KINDS:  # from 0, so that the first one shows in rate()
            self.incidents.labels(kind)
        self.scheduled = Gauge(
            "tokenbroker_schedule_depth", "Accounts in the refresh schedule", registry=self.registry
        )
        self.overdue = Gauge(
            "tokenbroker_schedule_overdue",
            "Scheduled accounts whose refresh is due",
            registry=self.registry,
        )
        self.accounts = Gauge(
            "tokenbroker_accounts", "Accounts by status", ["status"], registry=self.registry
        )

        self.deliveries = Counter(
            "tokenbroker_webhook_deliveries",
            "Webhook delivery attempts by event and outcome",
            ["event", "outcome"],
            registry=self.registry,
        )
        self.delivery_seconds = Histogram(
            "tokenbroker_webhook_attempt_seconds",
            "Duration of one webhook delivery attempt",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.backlog = Gauge(
            "tokenbroker_webhook_backlog", "Events waiting for delivery", registry=self.registry
        )
        self.dead_letters = Gauge(
            "tokenbroker_webhook_dead_letters",
            "Events whose retry budget ran out",
            registry=self.registry,
        )
        self.backlog_age = Gauge(
            "tokenbroker_webhook_backlog_oldest_seconds",
            "Age of the oldest waiting event",
            registry=self.registry,
        )
        self._token_endpoint_metrics()
        self._audit_metrics()

    def _token_endpoint_metrics(self) -> None:
        """The token endpoint's requests (a counter and a histogram: cheap on the hot path)."""
        self.token_requests = TokenRequests()
        self.registry.register(self.token_requests)
        self.cache_lookups = CacheLookups()
        self.registry.register(self.cache_lookups)
        self.app_credentials_error = Gauge(
            "tokenbroker_app_credentials_error",
            "1 while the provider rejects the app's client credentials",
            ["app"],
            registry=self.registry,
        )
        self.app_credential_expiry = Gauge(
            "tokenbroker_app_credential_expiry_seconds",
            "Seconds until the app's client secret or certificate expires (recorded dates only)",
            ["app", "credential"],
            registry=self.registry,
        )
        self.grants_expiring = Gauge(
            "tokenbroker_grants_expiring",
            "Active accounts whose grant has a known deadline within the window (48h, 7d)",
            ["within"],
            registry=self.registry,
        )

    def _audit_metrics(self) -> None:
        """The audit trail's writes, failed flushes and records lost to a long outage."""
        self.audit_written = Counter(
            "tokenbroker_audit_records_written",
            "Audit records written to Redis",
            registry=self.registry,
        )
        self.audit_flush_failures = Counter(
            "tokenbroker_audit_flush_failures",
            "Audit flushes that failed on the store (their records are kept for the next)",
            registry=self.registry,
        )
        self.audit_dropped = Counter(
            "tokenbroker_audit_records_dropped",
            "Audit records dropped because the store stayed down and the buffer was full",
            registry=self.registry,
        )

    def count_token_request(self, code: str, seconds: float) -> None:
        """Count one token endpoint answer (`ok` or an error code) and its duration."""
        self.token_requests.observe(code, seconds)

    def count_incident(self, kind: str) -> None:
        """Count one refresh incident (the Refresher's hook)."""
        self.incidents.labels(kind).inc()

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)


class CountsLookups(Protocol):
    """A cache that counts its lookups (service.store.cache.LocalCache)."""

    hits: int
    misses: int


class CacheLookups(Collector):
    """The per-process cache's hits and misses, counted by the cache, read at scrape time."""

    def __init__(self) -> None:
        self.cache: CountsLookups | None = None

    def follow(self, cache: CountsLookups) -> None:
        """Export the counts of `cache` (the process's one cache)."""
        self.cache = cache

    def collect(self) -> Iterator[Metric]:
        """One counter family: lookups by result (none before a cache is followed)."""
        family = CounterMetricFamily(
            "tokenbroker_cache_lookups",
            "Lookups in the per-process cache by result (hit: answered without Redis)",
            labels=["result"],
        )
        if self.cache is not None:
            family.add_metric(["hit"], self.cache.hits)
            family.add_metric(["miss"], self.cache.misses)
        yield family


class TokenRequests(Collector):
    """The token endpoint's answers by code and their durations: a counter and a histogram.

    Plain numbers, read at scrape time: the event loop is their only writer, so the hot path
    takes none of the three locks prometheus_client's Counter and Histogram take per request.
    """

    def __init__(self, buckets: tuple[float, ...] = TOKEN_BUCKETS) -> None:
        self.bounds = buckets
        self.codes: dict[str, int] = {"ok": 0}
        self.buckets = [0] * (len(buckets) + 1)  # not cumulative; the last one is +Inf
        self.sum = 0.0

    def observe(self, code: str, seconds: float) -> None:
        """Count one answer (`ok` or an error code) and its duration."""
        codes = self.codes
        codes[code] = codes.get(code, 0) + 1
        self.buckets[bisect_left(self.bounds, seconds)] += 1  # a bucket holds value <= bound
        self.sum += seconds

    def collect(self) -> Iterator[Metric]:
        """The counter by code, then the histogram."""
        requests = CounterMetricFamily(
            "tokenbroker_token_requests",
            "Token endpoint requests by answer: ok or the error's stable code",
            labels=["code"],
        )
        for code, count in list(self.codes.items()):
            requests.add_metric([code], count)
        yield requests
        cumulative, total = [], 0
        for bound, count in zip([*self.bounds, float("inf")], self.buckets, strict=True):
            total += count
            cumulative.append((_le(bound), float(total)))
        yield HistogramMetricFamily(
            "tokenbroker_token_request_seconds",
            "Duration of one token endpoint request (refreshes on demand included)",
            buckets=cumulative,
            sum_value=self.sum,
        )


def _le(bound: float) -> str:
    """A bucket's `le` label as prometheus_client writes it: 0.001, 1.0, +Inf."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


class WorkerMetrics(Metrics):
    """The worker's metrics: the refresh metrics plus its heartbeat and its view of Redis."""

    def __init__(self) -> None:
        super().__init__()
        self.last_beat = Gauge(
            "tokenbroker_worker_last_beat_timestamp_seconds",
            "When the worker's loops last made progress (Unix time)",
            registry=self.registry,
        )
        self.store_up = Gauge(
            "tokenbroker_store_up",
            "1 when the worker's last write or ping to Redis succeeded, else 0",
            registry=self.registry,
        )
