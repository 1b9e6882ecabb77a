"""Prometheus metrics of one process, in a registry of its own (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


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
            "recovered_with_previous, orphan_revoked",
            ["kind"],
            registry=self.registry,
        )
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

    def count_incident(self, kind: str) -> None:
        """Count one refresh incident (the Refresher's hook)."""
        self.incidents.labels(kind).inc()

    def render(self) -> bytes:
        """The metrics in Prometheus' text format."""
        return generate_latest(self.registry)
