"""The environment configuration, read once at start-up into a frozen Config."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from service import config_table as t
from service.config_table import SETTINGS, Setting
from service.errors import Fault
from service.limits import MAX_BODY_BYTES

CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
SENTINEL_FORM = "redis+sentinel://[:password@]host:port[,host:port…]/<service-name>[/<db>]"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCK_MARGIN_MS = 5_000  # a refresh lock outlasts its provider calls by this much
N = TypeVar("N", int, float)
MASK = "********"  # what `tokenbroker config` and error messages show of a secret


class ConfigError(Fault):
    """A variable of the environment is missing or malformed; the message names it."""


@dataclass(frozen=True)
class Config:
    """Everything the processes read from the environment, with units in the names.

    Each field but max_body_bytes is one variable of service/config_table.py, its default too.
    """

    redis_url: str
    secret_key: bytes = field(repr=False)
    old_secret_keys: tuple[bytes, ...] = field(default=t.OLD_SECRETS.default, repr=False)
    host: str = t.HOST.default
    port: int = t.PORT.default
    base_url: str = t.BASE_URL.default
    redis_prefix: str = t.REDIS_PREFIX.default
    redis_mode: str = t.REDIS_MODE.default  # "cluster" also when REDIS_URL is redis+cluster://
    schedule_partitions: int = t.SCHEDULE_PARTITIONS.default
    log_format: str = t.LOG_FORMAT.default
    enable_oauth_tokens_api_seed: bool | None = t.ENABLE_OAUTH_TOKENS_API.default
    allow_endpoint_overrides: bool = t.ALLOW_ENDPOINT_OVERRIDES.default
    allow_private_urls: bool = t.ALLOW_PRIVATE_URLS.default
    trusted_proxies: tuple[Network, ...] = t.TRUSTED_PROXIES.default  # X-Forwarded-For believed
    redis_timeout_s: float = t.REDIS_TIMEOUT_S.default
    provider_timeout_s: float = t.PROVIDER_TIMEOUT_S.default
    lock_ms: int = t.LOCK_MS.default
    replica_wait_ms: int = t.REPLICA_WAIT_MS.default
    refresh_lead_s: int = t.REFRESH_LEAD_S.default
    keepalive_s: int = t.KEEPALIVE_S.default
    credential_warning_days: int = t.CREDENTIAL_WARNING_DAYS.default
    credential_final_warning_days: int = t.CREDENTIAL_FINAL_WARNING_DAYS.default
    credential_check_s: int = t.CREDENTIAL_CHECK_S.default
    grant_warning_hours: int = t.GRANT_WARNING_HOURS.default
    grant_final_warning_hours: int = t.GRANT_FINAL_WARNING_HOURS.default
    cache_ttl_s: float = t.CACHE_TTL_S.default
    max_body_bytes: int = MAX_BODY_BYTES  # an input limit (service/limits.py), not a variable
    worker_concurrency: int = t.WORKER_CONCURRENCY.default
    app_rate_per_s: float = t.APP_RATE_PER_S.default
    web_refresh_concurrency: int = t.WEB_REFRESH_CONCURRENCY.default  # per app, per process
    provider_answer_max_s: float = t.PROVIDER_ANSWER_MAX_S.default  # wait for a sent refresh
    lease_ms: int = t.LEASE_MS.default
    poll_ms: int = t.POLL_MS.default
    shutdown_grace_s: float = t.SHUTDOWN_GRACE_S.default
    worker_health_file: str = t.WORKER_HEALTH_FILE.default
    worker_metrics_port: int | None = t.WORKER_METRICS_PORT.default
    worker_metrics_host: str = t.WORKER_METRICS_HOST.default  # its /metrics: no authentication
    webhook_timeout_s: float = t.WEBHOOK_TIMEOUT_S.default
    webhook_retry_budget_s: int = t.WEBHOOK_RETRY_BUDGET_S.default
    webhook_retry_base_ms: int = t.WEBHOOK_RETRY_BASE_MS.default
    webhook_lease_ms: int = t.WEBHOOK_LEASE_MS.default
    webhook_concurrency: int = t.WEBHOOK_CONCURRENCY.default
    otel_endpoint: str | None = t.OTEL_ENDPOINT.default  # None: tracing off
    otel_service_name: str = t.OTEL_SERVICE_NAME.default
    otel_protocol: str = t.OTEL_PROTOCOL.default
    audit_enabled: bool = t.AUDIT.default
    audit_retention_days: int = t.AUDIT_RETENTION_DAYS.default
    audit_partitions: int = t.AUDIT_PARTITIONS.default
    audit_max_len: int = t.AUDIT_MAX_LEN.default
    audit_flush_ms: int = t.AUDIT_FLUSH_MS.default

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
        """Read every variable of the table from `environ` (default: os.environ)."""
        env = os.environ if environ is None else environ
        values = {setting.field: read(setting, env) for setting in SETTINGS}
        if values["redis_mode"] == "cluster" and (
            urlsplit(values["redis_url"]).scheme in SENTINEL_SCHEMES
        ):
            raise ConfigError("TOKENBROKER_REDIS_MODE=cluster does not go with a Sentinel URL")
        return cls(**values)


def read(setting: Setting[Any], env: Mapping[str, str]) -> Any:
    """The value of one variable: parsed and checked, or its default when unset or blank."""
    raw = env.get(setting.name, "").strip()
    if raw:
        return _PARSERS[setting.kind](setting, raw)
    if setting.required:
        raise ConfigError(f"{setting.name} is not set ({_MISSING[setting.kind]})")
    if setting is t.BASE_URL:  # the one default made of other variables
        return f"http://{_url_host(read(t.HOST, env))}:{read(t.PORT, env)}"
    return setting.default


def mask_url(url: str) -> str:
    """`url` with any password (in the userinfo or a password= parameter) as ********."""
    scheme, sep, rest = url.partition("://")
    base, mark, query = rest.partition("?")
    userinfo, at, location = base.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        userinfo = f"{user}:{MASK}" if colon else MASK
    query = re.sub(r"(?i)(\bpassword=)[^&]*", rf"\g<1>{MASK}", query)
    return f"{scheme}{sep}{userinfo}{at}{location}{mark}{query}"


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


def _integer(setting: Setting[Any], raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{setting.name} must be an integer, got {raw!r}") from None
    return _within(setting, value)


def _number(setting: Setting[Any], raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{setting.name} must be a number, got {raw!r}") from None
    return _within(setting, value)


def _within(setting: Setting[Any], value: N) -> N:
    low, high = setting.low, setting.high
    if low is None or high is None or not low <= value <= high:  # NaN is never within
        raise ConfigError(f"{setting.name} must be between {low} and {high}, got {value}")
    return value


def _boolean(setting: Setting[Any], raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{setting.name} must be true or false, got {raw!r}")


def _choice(setting: Setting[Any], raw: str) -> str:
    if raw not in setting.choices:
        allowed = ", ".join(setting.choices)
        raise ConfigError(f"{setting.name} must be one of {allowed}, got {raw!r}")
    return raw


def _url(setting: Setting[Any], raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{setting.name} must be an http(s) URL, got {mask_url(raw)!r}")
    return raw.rstrip("/")


def _redis_url(setting: Setting[Any], raw: str) -> str:
    name, scheme = setting.name, urlsplit(raw).scheme
    if scheme in CLUSTER_SCHEMES:
        hosts = raw.partition("://")[2].rpartition("@")[2].partition("/")[0].split(",")
        if not all(h.rpartition(":")[2].isdigit() and h.rpartition(":")[0] for h in hosts):
            raise ConfigError(f"{name} must list host:port nodes: redis+cluster://h:p,h:p")
    elif scheme in SENTINEL_SCHEMES:
        if sentinel_parts(raw) is None:
            raise ConfigError(f"{name} must look like {SENTINEL_FORM}, got {mask_url(raw)!r}")
    elif scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            f"{name} must start with redis://, rediss://, unix://, redis+cluster://"
            " or redis+sentinel://"
        )
    return raw


def _networks(setting: Setting[Any], raw: str) -> tuple[Network, ...]:
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    try:
        return tuple(ipaddress.ip_network(part, strict=False) for part in parts)
    except ValueError:
        raise ConfigError(
            f"{setting.name} must list IP addresses or CIDRs, comma-separated, got {raw!r}"
        ) from None


def _prefix(setting: Setting[Any], raw: str) -> str:
    if not raw.replace("_", "").replace("-", "").isalnum() or "{" in raw:
        raise ConfigError(f"{setting.name} may hold only letters, digits, '-' and '_', got {raw!r}")
    return raw


def _key(setting: Setting[Any], raw: str) -> bytes:
    try:
        key = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{setting.name} must be base64 (32 random bytes)") from None
    if len(key) != 32:
        raise ConfigError(f"{setting.name} must decode to 32 bytes, got {len(key)}")
    return key


def _keys(setting: Setting[Any], raw: str) -> tuple[bytes, ...]:
    return tuple(_key(setting, part.strip()) for part in raw.split(",") if part.strip())


_PARSERS: dict[str, Callable[[Setting[Any], str], Any]] = {
    "text": lambda setting, raw: raw,
    "integer": _integer,
    "number": _number,
    "boolean": _boolean,
    "choice": _choice,
    "url": _url,
    "redis_url": _redis_url,
    "prefix": _prefix,
    "key": _key,
    "keys": _keys,
    "networks": _networks,
}
_MISSING = {
    "redis_url": "for example redis://127.0.0.1:6379/0",
    "key": "32 random bytes, base64: "
    'python -c "import base64,os;print(base64.b64encode(os.urandom(32)).decode())"',
}
