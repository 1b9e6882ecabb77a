"""Every environment variable, defined once: name, type, default, bounds and meaning.

Config (service/config.py) takes its field defaults from here and reads the environment by
this table; README's environment table, `tokenbroker config` and the env example file are
rendered from it (service/ops/config_docs.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

T = TypeVar("T", covariant=True)
Kind = Literal[
    "text", "integer", "number", "boolean", "choice", "url", "redis_url", "prefix", "key",
    "keys", "networks",
]  # fmt: skip


@dataclass(frozen=True)
class Setting(Generic[T]):
    """One environment variable and the Config field it fills."""

    name: str
    field: str
    kind: Kind
    default: T  # the value when unset or blank (None for a required variable)
    meaning: str  # Markdown: README shows it as is
    low: int | float | None = None  # bounds of an integer or number, both inclusive
    high: int | float | None = None
    choices: tuple[str, ...] = ()
    required: bool = False
    secret: bool = False  # never shown: `tokenbroker config` masks it
    shown_default: str | None = None  # how the docs state a default that is not a plain value


# ruff: noqa: E501, RUF001 - one variable per record, its meaning on one line as README shows it
REDIS_URL = Setting[str | None](
    "REDIS_URL", "redis_url", "redis_url", None,
    "`redis://`, `rediss://` or `unix://` URL; Redis Cluster: `redis+cluster://host:port[,host:port…]` (`rediss+cluster://` for TLS); Redis Sentinel: `redis+sentinel://[:password@]host:port[,host:port…]/<service-name>[/<db>]` (the sentinels' addresses; `rediss+sentinel://` for TLS)",
    required=True, shown_default="(required; `make run` embeds one)",
)  # fmt: skip
REDIS_MODE = Setting(
    "TOKENBROKER_REDIS_MODE", "redis_mode", "choice", "single",
    "`cluster`: treat a `redis://` URL as one node of a Redis Cluster (not with a Sentinel URL); a `redis+cluster://` URL is a cluster anyway",
    choices=("single", "cluster"),
)  # fmt: skip
SECRET = Setting[bytes | None](
    "TOKENBROKER_SECRET", "secret_key", "key", None,
    '32 random bytes, base64: `python3 -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"`',
    required=True, secret=True, shown_default="(required; `make run` generates one)",
)  # fmt: skip
OLD_SECRETS = Setting(
    "TOKENBROKER_OLD_SECRETS", "old_secret_keys", "keys", (),
    "comma-separated old keys, used only to decrypt (key rotation)",
    secret=True, shown_default="none",
)  # fmt: skip
HOST = Setting(
    "TOKENBROKER_HOST", "host", "text", "127.0.0.1",
    "address the web process binds",
)  # fmt: skip
PORT = Setting(
    "TOKENBROKER_PORT", "port", "integer", 8080,
    "port the web process binds",
    low=1, high=65535,
)  # fmt: skip
BASE_URL = Setting(
    "TOKENBROKER_BASE_URL", "base_url", "url", "http://127.0.0.1:8080",
    "public URL (OAuth callback, links)",
    shown_default="`http://HOST:PORT`",
)  # fmt: skip
REDIS_PREFIX = Setting(
    "TOKENBROKER_REDIS_PREFIX", "redis_prefix", "prefix", "tb",
    "prefix of every Redis key",
)  # fmt: skip
SCHEDULE_PARTITIONS = Setting(
    "TOKENBROKER_SCHEDULE_PARTITIONS", "schedule_partitions", "integer", 1,
    "partitions of the account keyspace (fixed when data is created)",
    low=1, high=1024,
)  # fmt: skip
LOG_FORMAT = Setting(
    "TOKENBROKER_LOG_FORMAT", "log_format", "choice", "auto",
    "`json`, `console`, or `auto` (console on a TTY)",
    choices=("json", "console", "auto"),
)  # fmt: skip
ENABLE_OAUTH_TOKENS_API = Setting[bool | None](
    "TOKENBROKER_ENABLE_OAUTH_TOKENS_API", "enable_oauth_tokens_api_seed", "boolean", None,
    "seeds `enableOAuthTokensApi` at first start only",
)  # fmt: skip
ALLOW_ENDPOINT_OVERRIDES = Setting(
    "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES", "allow_endpoint_overrides", "boolean", False,
    "allow overriding gmail/outlook/mailRu endpoints (tests)",
)  # fmt: skip
ALLOW_PRIVATE_URLS = Setting(
    "TOKENBROKER_ALLOW_PRIVATE_URLS", "allow_private_urls", "boolean", False,
    "allow calls to loopback/private addresses (tests); when false they are refused on save and at connect time",
)  # fmt: skip
TRUSTED_PROXIES = Setting(
    "TOKENBROKER_TRUSTED_PROXIES", "trusted_proxies", "networks", (),
    "comma-separated addresses/CIDRs of reverse proxies whose `X-Forwarded-For` is believed (the right-most address not itself a trusted proxy is the client, e.g. for the login rate limit)",
    shown_default="none",
)  # fmt: skip
REDIS_TIMEOUT_S = Setting(
    "TOKENBROKER_REDIS_TIMEOUT_S", "redis_timeout_s", "number", 2.0,
    "socket timeout towards Redis",
    low=0.05, high=60,
)  # fmt: skip
PROVIDER_TIMEOUT_S = Setting(
    "TOKENBROKER_PROVIDER_TIMEOUT_S", "provider_timeout_s", "number", 10.0,
    "timeout of one call to a provider (for a refresh: getting a connection; a sent refresh is awaited while its lock is held)",
    low=0.1, high=120,
)  # fmt: skip
PROVIDER_ANSWER_MAX_S = Setting(
    "TOKENBROKER_PROVIDER_ANSWER_MAX_S", "provider_answer_max_s", "number", 60.0,
    "longest wait for the answer to a sent refresh; at least `TOKENBROKER_PROVIDER_TIMEOUT_S`",
    low=1, high=3600,
)  # fmt: skip
LOCK_MS = Setting(
    "TOKENBROKER_LOCK_MS", "lock_ms", "integer", 30_000,
    "lifetime of the per-account refresh lock (extended while a sent refresh awaits its answer); must exceed 2 × `TOKENBROKER_PROVIDER_TIMEOUT_S` + 5 s (a discovery fetch and a token call)",
    low=100, high=600_000,
)  # fmt: skip
REPLICA_WAIT_MS = Setting(
    "TOKENBROKER_REPLICA_WAIT_MS", "replica_wait_ms", "integer", 500,
    "after storing a rotated refresh token, wait this long at most for a replica of its Redis node to hold it (`WAIT`; only where replicas exist; timeouts are counted, not fatal); 0 = never wait",
    low=0, high=10_000,
)  # fmt: skip
REFRESH_LEAD_S = Setting(
    "TOKENBROKER_REFRESH_LEAD_S", "refresh_lead_s", "integer", 300,
    "refresh this long before expiry (bounded by 10–50 % of the lifetime)",
    low=0, high=86_400,
)  # fmt: skip
KEEPALIVE_S = Setting(
    "TOKENBROKER_KEEPALIVE_S", "keepalive_s", "integer", 86_400,
    "refresh tokens that never expire this often",
    low=60, high=90 * 86_400,
)  # fmt: skip
CREDENTIAL_WARNING_DAYS = Setting(
    "TOKENBROKER_CREDENTIAL_WARNING_DAYS", "credential_warning_days", "integer", 14,
    "an `appCredentialsExpiring` event and a dashboard warning this many days before an app's client secret or certificate expires",
    low=1, high=365,
)  # fmt: skip
CREDENTIAL_FINAL_WARNING_DAYS = Setting(
    "TOKENBROKER_CREDENTIAL_FINAL_WARNING_DAYS", "credential_final_warning_days", "integer", 3,
    "a second `appCredentialsExpiring` event this many days before (0: none)",
    low=0, high=365,
)  # fmt: skip
CREDENTIAL_CHECK_S = Setting(
    "TOKENBROKER_CREDENTIAL_CHECK_S", "credential_check_s", "integer", 3600,
    "how often the worker checks the expiry dates of apps' credentials",
    low=1, high=86_400,
)  # fmt: skip
GRANT_WARNING_HOURS = Setting(
    "TOKENBROKER_GRANT_WARNING_HOURS", "grant_warning_hours", "integer", 48,
    "an `authenticationExpiring` event (with a re-consent link) this many hours before a grant's known deadline (a refresh token that expires: `refresh_token_expires_in`, a Google app in testing, a Microsoft single-page app)",
    low=1, high=24 * 365,
)  # fmt: skip
GRANT_FINAL_WARNING_HOURS = Setting(
    "TOKENBROKER_GRANT_FINAL_WARNING_HOURS", "grant_final_warning_hours", "integer", 6,
    "a second `authenticationExpiring` event this many hours before the deadline (0: none)",
    low=0, high=24 * 365,
)  # fmt: skip
CACHE_TTL_S = Setting(
    "TOKENBROKER_CACHE_TTL_S", "cache_ttl_s", "number", 5.0,
    "safety-net TTL of the per-process cache",
    low=0, high=3600,
)  # fmt: skip
WORKER_CONCURRENCY = Setting(
    "TOKENBROKER_WORKER_CONCURRENCY", "worker_concurrency", "integer", 16,
    "refreshes in flight per worker process",
    low=1, high=1024,
)  # fmt: skip
APP_RATE_PER_S = Setting(
    "TOKENBROKER_APP_RATE_PER_S", "app_rate_per_s", "number", 20.0,
    "refreshes per second per app, shared by all workers and web processes",
    low=0.01, high=100_000,
)  # fmt: skip
WEB_REFRESH_CONCURRENCY = Setting(
    "TOKENBROKER_WEB_REFRESH_CONCURRENCY", "web_refresh_concurrency", "integer", 8,
    "on-demand refreshes in flight per app in one web process",
    low=1, high=1024,
)  # fmt: skip
LEASE_MS = Setting(
    "TOKENBROKER_LEASE_MS", "lease_ms", "integer", 60_000,
    "a claimed account comes back to the schedule after this",
    low=100, high=3_600_000,
)  # fmt: skip
POLL_MS = Setting(
    "TOKENBROKER_POLL_MS", "poll_ms", "integer", 250,
    "how often an idle worker looks for due accounts and webhook deliveries",
    low=10, high=60_000,
)  # fmt: skip
SHUTDOWN_GRACE_S = Setting(
    "TOKENBROKER_SHUTDOWN_GRACE_S", "shutdown_grace_s", "number", 20.0,
    "how long a stopping worker lets refreshes finish; at least `TOKENBROKER_PROVIDER_TIMEOUT_S`",
    low=0, high=600,
)  # fmt: skip
WORKER_HEALTH_FILE = Setting(
    "TOKENBROKER_WORKER_HEALTH_FILE", "worker_health_file", "text",
    "/tmp/tokenbroker-worker.health",  # noqa: S108 - a heartbeat, not a secret
    "heartbeat read by `worker --check`",
)  # fmt: skip
WORKER_METRICS_PORT = Setting[int | None](
    "TOKENBROKER_WORKER_METRICS_PORT", "worker_metrics_port", "integer", None,
    "serve the worker's Prometheus `/metrics` on this port",
    low=1, high=65535,
)  # fmt: skip
WORKER_METRICS_HOST = Setting(
    "TOKENBROKER_WORKER_METRICS_HOST", "worker_metrics_host", "text", "127.0.0.1",
    "address the worker's `/metrics` binds (no authentication: `0.0.0.0` only where the network is private, e.g. a pod scraped by Prometheus)",
)  # fmt: skip
WEBHOOK_TIMEOUT_S = Setting(
    "TOKENBROKER_WEBHOOK_TIMEOUT_S", "webhook_timeout_s", "number", 10.0,
    "timeout of one webhook delivery attempt (and of a test event)",
    low=0.1, high=120,
)  # fmt: skip
WEBHOOK_RETRY_BUDGET_S = Setting(
    "TOKENBROKER_WEBHOOK_RETRY_BUDGET_S", "webhook_retry_budget_s", "integer", 86_400,
    "a failing delivery is retried for this long after its first attempt, then kept as a dead letter",
    low=1, high=30 * 86_400,
)  # fmt: skip
WEBHOOK_RETRY_BASE_MS = Setting(
    "TOKENBROKER_WEBHOOK_RETRY_BASE_MS", "webhook_retry_base_ms", "integer", 5_000,
    "delay before the first retry of a delivery, doubled for each further one (±20 %, at most 8 h)",
    low=10, high=3_600_000,
)  # fmt: skip
WEBHOOK_LEASE_MS = Setting(
    "TOKENBROKER_WEBHOOK_LEASE_MS", "webhook_lease_ms", "integer", 60_000,
    "a delivery taken by a worker goes to another after this; must exceed `TOKENBROKER_WEBHOOK_TIMEOUT_S`",
    low=100, high=3_600_000,
)  # fmt: skip
WEBHOOK_CONCURRENCY = Setting(
    "TOKENBROKER_WEBHOOK_CONCURRENCY", "webhook_concurrency", "integer", 16,
    "webhook deliveries in flight per worker process",
    low=1, high=1024,
)  # fmt: skip

OTEL_ENDPOINT = Setting[str | None](
    "OTEL_EXPORTER_OTLP_ENDPOINT", "otel_endpoint", "url", None,
    "OpenTelemetry traces: the OTLP/HTTP collector's base URL (spans go to `<url>/v1/traces`); unset, tracing is off and costs nothing",
    shown_default="(off)",
)  # fmt: skip
OTEL_SERVICE_NAME = Setting(
    "OTEL_SERVICE_NAME", "otel_service_name", "text", "tokenbroker",
    "the traces' `service.name`",
)  # fmt: skip
OTEL_PROTOCOL = Setting(
    "OTEL_EXPORTER_OTLP_PROTOCOL", "otel_protocol", "choice", "http/protobuf",
    "the OTLP transport; only `http/protobuf` is supported",
    choices=("http/protobuf",),
)  # fmt: skip

AUDIT = Setting(
    "TOKENBROKER_AUDIT", "audit_enabled", "boolean", True,
    "the audit trail: every token answer and operator action recorded in Redis (`GET /v1/audit`, /admin/audit) and logged as an `audit` line",
)  # fmt: skip
AUDIT_RETENTION_DAYS = Setting(
    "TOKENBROKER_AUDIT_RETENTION_DAYS", "audit_retention_days", "integer", 30,
    "audit records older than this are trimmed",
    low=1, high=3650,
)  # fmt: skip
AUDIT_PARTITIONS = Setting(
    "TOKENBROKER_AUDIT_PARTITIONS", "audit_partitions", "integer", 4,
    "audit streams (by hash of the account or actor), each with its own hash tag",
    low=1, high=256,
)  # fmt: skip
AUDIT_MAX_LEN = Setting(
    "TOKENBROKER_AUDIT_MAX_LEN", "audit_max_len", "integer", 1_000_000,
    "safety cap on the entries of one audit stream (approximate; an entry holds the records of one flush)",
    low=1000, high=100_000_000,
)  # fmt: skip
AUDIT_FLUSH_MS = Setting(
    "TOKENBROKER_AUDIT_FLUSH_MS", "audit_flush_ms", "integer", 1000,
    "how often a web process writes its buffered token-answer records (sooner when 500 wait)",
    low=10, high=60_000,
)  # fmt: skip

SETTINGS: tuple[Setting[object], ...] = (
    REDIS_URL, REDIS_MODE, SECRET, OLD_SECRETS, HOST, PORT, BASE_URL, REDIS_PREFIX,
    SCHEDULE_PARTITIONS, LOG_FORMAT, ENABLE_OAUTH_TOKENS_API, ALLOW_ENDPOINT_OVERRIDES,
    ALLOW_PRIVATE_URLS, TRUSTED_PROXIES, REDIS_TIMEOUT_S, PROVIDER_TIMEOUT_S,
    PROVIDER_ANSWER_MAX_S, LOCK_MS, REPLICA_WAIT_MS, REFRESH_LEAD_S, KEEPALIVE_S,
    CREDENTIAL_WARNING_DAYS, CREDENTIAL_FINAL_WARNING_DAYS, CREDENTIAL_CHECK_S,
    GRANT_WARNING_HOURS, GRANT_FINAL_WARNING_HOURS, CACHE_TTL_S,
    WORKER_CONCURRENCY, APP_RATE_PER_S, WEB_REFRESH_CONCURRENCY, LEASE_MS, POLL_MS,
    SHUTDOWN_GRACE_S, WORKER_HEALTH_FILE, WORKER_METRICS_PORT, WORKER_METRICS_HOST,
    WEBHOOK_TIMEOUT_S, WEBHOOK_RETRY_BUDGET_S, WEBHOOK_RETRY_BASE_MS, WEBHOOK_LEASE_MS,
    WEBHOOK_CONCURRENCY, OTEL_ENDPOINT, OTEL_SERVICE_NAME, OTEL_PROTOCOL, AUDIT,
    AUDIT_RETENTION_DAYS, AUDIT_PARTITIONS, AUDIT_MAX_LEN, AUDIT_FLUSH_MS,
)  # fmt: skip
