"""The environment configuration, read once at start-up into a frozen Config."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOG_FORMATS = ("json", "console", "auto")
REDIS_MODES = ("single", "cluster")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_FORM = "redis+sentinel://[:password@]host:port[,host:port…]/<service-name>[/<db>]"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCK_MARGIN_MS = 5_000  # a refresh lock outlasts its provider calls by this much


class ConfigError(Exception):
    """A variable of the environment is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Config:
    """Everything the processes read from the environment, with units in the names."""

    redis_url: str
    secret_key: bytes = field(repr=False)
    old_secret_keys: tuple[bytes, ...] = field(default=(), repr=False)
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = "http://127.0.0.1:8080"
    redis_prefix: str = "tb"
    redis_mode: str = "single"  # "cluster" also when REDIS_URL is redis+cluster://
    schedule_partitions: int = 1
    log_format: str = "auto"
    enable_oauth_tokens_api_seed: bool | None = None
    allow_endpoint_overrides: bool = False
    allow_private_urls: bool = False
    trusted_proxies: tuple[Network, ...] = ()  # whose X-Forwarded-For names the client
    redis_timeout_s: float = 2.0
    provider_timeout_s: float = 10.0
    lock_ms: int = 30_000
    refresh_lead_s: int = 300
    keepalive_s: int = 86_400
    cache_ttl_s: float = 5.0
    max_body_bytes: int = 64 * 1024
    worker_concurrency: int = 16
    app_rate_per_s: float = 20.0
    web_refresh_concurrency: int = 8  # on-demand refreshes per app in one web process
    provider_answer_max_s: float = 60.0  # longest wait for a sent refresh's answer
    lease_ms: int = 60_000
    poll_ms: int = 250
    shutdown_grace_s: float = 20.0
    worker_health_file: str = "/tmp/tokenbroker-worker.health"  # noqa: S108 - a heartbeat
    worker_metrics_port: int | None = None
    worker_metrics_host: str = "127.0.0.1"  # the worker's /metrics has no authentication
    webhook_timeout_s: float = 10.0
    webhook_retry_budget_s: int = 86_400
    webhook_retry_base_ms: int = 5_000
    webhook_lease_ms: int = 60_000
    webhook_concurrency: int = 16

    def __post_init__(self) -> None:
        if self.shutdown_grace_s < self.provider_timeout_s:
            raise ConfigError(
                "TOKENBROKER_SHUTDOWN_GRACE_S must be at least TOKENBROKER_PROVIDER_TIMEOUT_S: "
                "a refresh at the provider is never cut short"
            )
        if self.provider_answer_max_s < self.provider_timeout_s:
            raise ConfigError(
                "TOKENBROKER_PROVIDER_ANSWER_MAX_S must be at least TOKENBROKER_PROVIDER_TIMEOUT_S"
            )
        if self.webhook_lease_ms <= self.webhook_timeout_s * 1000:
            raise ConfigError(
                "TOKENBROKER_WEBHOOK_LEASE_MS must exceed TOKENBROKER_WEBHOOK_TIMEOUT_S, so that "
                "no delivery is taken over while its attempt is still running"
            )
        if self.lock_ms <= 2 * self.provider_timeout_s * 1000 + LOCK_MARGIN_MS:
            raise ConfigError(
                "TOKENBROKER_LOCK_MS must exceed 2 x TOKENBROKER_PROVIDER_TIMEOUT_S + 5 s (a "
                "discovery fetch and a token call, each up to the timeout), so that a refresh "
                f"lock never expires during a refresh; got {self.lock_ms} ms"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        """Read the configuration from `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        port = reader.integer("TOKENBROKER_PORT", 8080, 1, 65535)
        host = reader.text("TOKENBROKER_HOST", "127.0.0.1")
        redis_url = reader.redis_url("REDIS_URL")
        redis_mode = reader.choice("TOKENBROKER_REDIS_MODE", "single", REDIS_MODES)
        if redis_mode == "cluster" and urlsplit(redis_url).scheme in SENTINEL_SCHEMES:
            raise ConfigError("TOKENBROKER_REDIS_MODE=cluster does not go with a Sentinel URL")
        return cls(
            redis_url=redis_url,
            secret_key=reader.key("TOKENBROKER_SECRET"),
            old_secret_keys=reader.keys("TOKENBROKER_OLD_SECRETS"),
            host=host,
            port=port,
            base_url=reader.url("TOKENBROKER_BASE_URL", f"http://{_url_host(host)}:{port}"),
            redis_prefix=reader.prefix("TOKENBROKER_REDIS_PREFIX", "tb"),
            redis_mode=redis_mode,
            schedule_partitions=reader.integer("TOKENBROKER_SCHEDULE_PARTITIONS", 1, 1, 1024),
            log_format=reader.choice("TOKENBROKER_LOG_FORMAT", "auto", LOG_FORMATS),
            enable_oauth_tokens_api_seed=reader.optional_bool(
                "TOKENBROKER_ENABLE_OAUTH_TOKENS_API"
            ),
            allow_endpoint_overrides=reader.boolean("TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES"),
            allow_private_urls=reader.boolean("TOKENBROKER_ALLOW_PRIVATE_URLS"),
            trusted_proxies=reader.networks("TOKENBROKER_TRUSTED_PROXIES"),
            redis_timeout_s=reader.number("TOKENBROKER_REDIS_TIMEOUT_S", 2.0, 0.05, 60),
            provider_timeout_s=reader.number("TOKENBROKER_PROVIDER_TIMEOUT_S", 10.0, 0.1, 120),
            lock_ms=reader.integer("TOKENBROKER_LOCK_MS", 30_000, 100, 600_000),
            refresh_lead_s=reader.integer("TOKENBROKER_REFRESH_LEAD_S", 300, 0, 86_400),
            keepalive_s=reader.integer("TOKENBROKER_KEEPALIVE_S", 86_400, 60, 90 * 86_400),
            cache_ttl_s=reader.number("TOKENBROKER_CACHE_TTL_S", 5.0, 0, 3600),
            worker_concurrency=reader.integer("TOKENBROKER_WORKER_CONCURRENCY", 16, 1, 1024),
            app_rate_per_s=reader.number("TOKENBROKER_APP_RATE_PER_S", 20.0, 0.01, 100_000),
            web_refresh_concurrency=reader.integer(
                "TOKENBROKER_WEB_REFRESH_CONCURRENCY", 8, 1, 1024
            ),
            provider_answer_max_s=reader.number(
                "TOKENBROKER_PROVIDER_ANSWER_MAX_S", 60.0, 1, 3600
            ),
            lease_ms=reader.integer("TOKENBROKER_LEASE_MS", 60_000, 100, 3_600_000),
            poll_ms=reader.integer("TOKENBROKER_POLL_MS", 250, 10, 60_000),
            shutdown_grace_s=reader.number("TOKENBROKER_SHUTDOWN_GRACE_S", 20.0, 0, 600),
            worker_health_file=reader.text(
                "TOKENBROKER_WORKER_HEALTH_FILE",
                "/tmp/tokenbroker-worker.health",  # noqa: S108
            ),
            worker_metrics_port=reader.optional_integer("TOKENBROKER_WORKER_METRICS_PORT"),
            worker_metrics_host=reader.text("TOKENBROKER_WORKER_METRICS_HOST", "127.0.0.1"),
            webhook_timeout_s=reader.number("TOKENBROKER_WEBHOOK_TIMEOUT_S", 10.0, 0.1, 120),
            webhook_retry_budget_s=reader.integer(
                "TOKENBROKER_WEBHOOK_RETRY_BUDGET_S", 86_400, 1, 30 * 86_400
            ),
            webhook_retry_base_ms=reader.integer(
                "TOKENBROKER_WEBHOOK_RETRY_BASE_MS", 5_000, 10, 3_600_000
            ),
            webhook_lease_ms=reader.integer("TOKENBROKER_WEBHOOK_LEASE_MS", 60_000, 100, 3_600_000),
            webhook_concurrency=reader.integer("TOKENBROKER_WEBHOOK_CONCURRENCY", 16, 1, 1024),
        )


@dataclass(frozen=True)
class SentinelUrl:
    """The parts of a redis+sentinel:// URL."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int
    password: str | None
    ssl: bool


def sentinel_parts(url: str) -> SentinelUrl | None:
    """The parts of redis(s)+sentinel://[:pw@]host:port[,host:port…]/<service>[/<db>], or None."""
    scheme, _, rest = url.partition("://")
    userinfo, _, location = rest.rpartition("@")
    hosts, _, path = location.partition("/")
    sentinels: list[tuple[str, int]] = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            return None
        sentinels.append((host, int(port)))
    service, _, db = path.partition("/")
    if not service or "/" in db or (db and not db.isdigit()):
        return None
    password = unquote(userinfo.partition(":")[2]) if userinfo else ""
    ssl = scheme == "rediss+sentinel"
    return SentinelUrl(tuple(sentinels), unquote(service), int(db or 0), password or None, ssl)


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def generate_secret() -> str:
    """Return a new TOKENBROKER_SECRET value: 32 random bytes, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def load_or_create_dev_secret(path: Path) -> tuple[str, bool]:
    """Read the dev key file at `path`, creating it (mode 0600) when missing."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generate_secret()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True


@dataclass(frozen=True)
class _Reader:
    """Parses single variables, raising ConfigError that names the variable."""

    env: Mapping[str, str]

    def _get(self, name: str) -> str | None:
        value = self.env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self._get(name) or default

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self._get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def optional_integer(self, name: str) -> int | None:
        if self._get(name) is None:
            return None
        return self.integer(name, 0, 1, 65535)

    def number(self, name: str, default: float, low: float, high: float) -> float:
        raw = self._get(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
        return value

    def optional_bool(self, name: str) -> bool | None:
        raw = self._get(name)
        if raw is None:
            return None
        lowered = raw.lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, got {raw!r}")

    def boolean(self, name: str) -> bool:
        return self.optional_bool(name) or False

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        raw = self._get(name)
        if raw is None:
            return default
        if raw not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return raw

    def url(self, name: str, default: str) -> str:
        raw = self._get(name)
        if raw is None:
            return default
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
        return raw.rstrip("/")

    def redis_url(self, name: str) -> str:
        raw = self._get(name)
        if raw is None:
            raise ConfigError(f"{name} is not set (for example redis://127.0.0.1:6379/0)")
        scheme = urlsplit(raw).scheme
        if scheme in CLUSTER_SCHEMES:
            hosts = raw.partition("://")[2].rpartition("@")[2].partition("/")[0].split(",")
            if not all(h.rpartition(":")[2].isdigit() and h.rpartition(":")[0] for h in hosts):
                raise ConfigError(f"{name} must list host:port nodes: redis+cluster://h:p,h:p")
        elif scheme in SENTINEL_SCHEMES:
            if sentinel_parts(raw) is None:
                raise ConfigError(f"{name} must look like {SENTINEL_FORM}, got {raw!r}")
        elif scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"{name} must start with redis://, rediss://, unix://, redis+cluster://"
                " or redis+sentinel://"
            )
        return raw

    def networks(self, name: str) -> tuple[Network, ...]:
        parts = [p.strip() for p in (self._get(name) or "").split(",") if p.strip()]
        try:
            return tuple(ipaddress.ip_network(part, strict=False) for part in parts)
        except ValueError:
            raise ConfigError(
                f"{name} must list IP addresses or CIDRs, comma-separated, got {self._get(name)!r}"
            ) from None

    def prefix(self, name: str, default: str) -> str:
        raw = self._get(name) or default
        if not raw.replace("_", "").replace("-", "").isalnum() or "{" in raw:
            raise ConfigError(f"{name} may hold only letters, digits, '-' and '_', got {raw!r}")
        return raw

    def key(self, name: str) -> bytes:
        raw = self._get(name)
        if raw is None:
            raise ConfigError(
                f"{name} is not set (32 random bytes, base64: "
                'python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())")'
            )
        return _decode_key(name, raw)

    def keys(self, name: str) -> tuple[bytes, ...]:
        raw = self._get(name)
        if raw is None:
            return ()
        return tuple(_decode_key(name, part.strip()) for part in raw.split(",") if part.strip())


def _decode_key(name: str, raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{name} must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError(f"{name} must decode to 32 bytes, got {len(key)}")
    return key
