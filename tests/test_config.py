"""Config.from_env: defaults, every variable parsed, every bad value refused by name."""

from __future__ import annotations

import base64

import pytest

from service.config import MASK, Config, ConfigError, mask_url

KEY = bytes(range(32))
OLD1, OLD2 = bytes([1]) * 32, bytes([2]) * 32
B64 = base64.b64encode(KEY).decode()
REQUIRED = {"REDIS_URL": "redis://127.0.0.1:6390/0", "TOKENBROKER_SECRET": B64}


def env(**extra: str) -> dict[str, str]:
    """The required variables plus `extra`."""
    return {**REQUIRED, **extra}


def test_defaults() -> None:
    """With only the required variables every other field has its documented default."""
    config = Config.from_env(REQUIRED)
    assert config == Config(redis_url="redis://127.0.0.1:6390/0", secret_key=KEY)
    assert config.old_secret_keys == ()
    assert config.host == "127.0.0.1" and config.port == 8080
    assert config.base_url == "http://127.0.0.1:8080"
    assert config.redis_prefix == "tb" and config.schedule_partitions == 1
    assert config.log_format == "auto"
    assert config.enable_oauth_tokens_api_seed is None
    assert config.allow_endpoint_overrides is False and config.allow_private_urls is False
    assert config.redis_timeout_s == 2.0 and config.provider_timeout_s == 10.0
    assert config.lock_ms == 30_000 and config.refresh_lead_s == 300
    assert config.keepalive_s == 86_400 and config.cache_ttl_s == 5.0


def test_every_variable_parsed() -> None:
    """Each documented variable lands, converted, in its field."""
    config = Config.from_env(
        {
            "REDIS_URL": "rediss://user:pw@redis.internal:6380/2",
            "TOKENBROKER_SECRET": f"  {B64}\n",
            "TOKENBROKER_OLD_SECRETS": (
                f"{base64.b64encode(OLD1).decode()}, {base64.b64encode(OLD2).decode()},"
            ),
            "TOKENBROKER_HOST": "10.1.2.3",
            "TOKENBROKER_PORT": "9090",
            "TOKENBROKER_BASE_URL": "https://tokens.example.com/",
            "TOKENBROKER_REDIS_PREFIX": "tb-prod_1",
            "TOKENBROKER_SCHEDULE_PARTITIONS": "16",
            "TOKENBROKER_LOG_FORMAT": "json",
            "TOKENBROKER_ENABLE_OAUTH_TOKENS_API": "yes",
            "TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES": "TRUE",
            "TOKENBROKER_ALLOW_PRIVATE_URLS": "1",
            "TOKENBROKER_REDIS_TIMEOUT_S": "0.25",
            "TOKENBROKER_PROVIDER_TIMEOUT_S": "7.5",
            "TOKENBROKER_LOCK_MS": "20001",
            "TOKENBROKER_REFRESH_LEAD_S": "0",
            "TOKENBROKER_KEEPALIVE_S": "3600",
            "TOKENBROKER_CACHE_TTL_S": "0",
        }
    )
    assert config == Config(
        redis_url="rediss://user:pw@redis.internal:6380/2",
        secret_key=KEY,
        old_secret_keys=(OLD1, OLD2),
        host="10.1.2.3",
        port=9090,
        base_url="https://tokens.example.com",  # trailing slash dropped
        redis_prefix="tb-prod_1",
        schedule_partitions=16,
        log_format="json",
        enable_oauth_tokens_api_seed=True,
        allow_endpoint_overrides=True,
        allow_private_urls=True,
        redis_timeout_s=0.25,
        provider_timeout_s=7.5,
        lock_ms=20001,
        refresh_lead_s=0,
        keepalive_s=3600,
        cache_ttl_s=0.0,
    )


def test_base_url_defaults_to_host_and_port() -> None:
    """Without TOKENBROKER_BASE_URL the base URL is http://HOST:PORT."""
    config = Config.from_env(env(TOKENBROKER_HOST="10.0.0.5", TOKENBROKER_PORT="8443"))
    assert config.base_url == "http://10.0.0.5:8443"


def test_base_url_default_brackets_an_ipv6_host() -> None:
    """An IPv6 TOKENBROKER_HOST gives a valid default base URL (http://[::1]:PORT)."""
    config = Config.from_env(env(TOKENBROKER_HOST="::1"))
    assert config.base_url == "http://[::1]:8080"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("true", True), ("On", True), ("0", False), ("no", False), ("OFF", False), ("", None)],
)
def test_seed_booleans(value: str, expected: bool | None) -> None:
    """The seed variable takes the usual spellings of true/false; empty means unset."""
    config = Config.from_env(env(TOKENBROKER_ENABLE_OAUTH_TOKENS_API=value))
    assert config.enable_oauth_tokens_api_seed is expected


@pytest.mark.parametrize(
    "name",
    [
        "TOKENBROKER_PORT",
        "TOKENBROKER_OLD_SECRETS",
        "TOKENBROKER_BASE_URL",
        "TOKENBROKER_REDIS_PREFIX",
        "TOKENBROKER_LOG_FORMAT",
        "TOKENBROKER_CACHE_TTL_S",
        "TOKENBROKER_ALLOW_PRIVATE_URLS",
    ],
)
def test_empty_means_default(name: str) -> None:
    """A variable set to the empty string (or blanks) counts as unset."""
    assert Config.from_env(env(**{name: "  "})) == Config.from_env(REQUIRED)


def test_empty_host_means_loopback() -> None:
    """An empty TOKENBROKER_HOST binds the default 127.0.0.1, not every interface."""
    config = Config.from_env(env(TOKENBROKER_HOST=""))
    assert config.host == "127.0.0.1"
    assert config.base_url == "http://127.0.0.1:8080"


@pytest.mark.parametrize("name", ["REDIS_URL", "TOKENBROKER_SECRET"])
@pytest.mark.parametrize("value", [None, "", "   "])
def test_missing_required(name: str, value: str | None) -> None:
    """A required variable that is unset or empty raises ConfigError naming it."""
    environ = dict(REQUIRED)
    if value is None:
        del environ[name]
    else:
        environ[name] = value
    with pytest.raises(ConfigError, match=name):
        Config.from_env(environ)


BAD_VALUES = [
    ("REDIS_URL", "127.0.0.1:6379"),
    ("REDIS_URL", "http://127.0.0.1:6379"),
    ("TOKENBROKER_SECRET", "not base64!"),
    ("TOKENBROKER_SECRET", base64.b64encode(bytes(16)).decode()),
    ("TOKENBROKER_SECRET", base64.urlsafe_b64encode(b"\xfb" * 32).decode()),
    ("TOKENBROKER_OLD_SECRETS", f"{B64},short"),
    ("TOKENBROKER_OLD_SECRETS", base64.b64encode(bytes(31)).decode()),
    ("TOKENBROKER_PORT", "http"),
    ("TOKENBROKER_PORT", "0"),
    ("TOKENBROKER_PORT", "65536"),
    ("TOKENBROKER_PORT", "80.5"),
    ("TOKENBROKER_BASE_URL", "tokens.example.com"),
    ("TOKENBROKER_BASE_URL", "ftp://tokens.example.com"),
    ("TOKENBROKER_BASE_URL", "https://"),
    ("TOKENBROKER_REDIS_PREFIX", "tb:x"),
    ("TOKENBROKER_REDIS_PREFIX", "{tb}"),
    ("TOKENBROKER_REDIS_PREFIX", "t b"),
    ("TOKENBROKER_SCHEDULE_PARTITIONS", "0"),
    ("TOKENBROKER_SCHEDULE_PARTITIONS", "1025"),
    ("TOKENBROKER_SCHEDULE_PARTITIONS", "two"),
    ("TOKENBROKER_LOG_FORMAT", "text"),
    ("TOKENBROKER_ENABLE_OAUTH_TOKENS_API", "enabled"),
    ("TOKENBROKER_ALLOW_ENDPOINT_OVERRIDES", "2"),
    ("TOKENBROKER_ALLOW_PRIVATE_URLS", "sure"),
    ("TOKENBROKER_REDIS_TIMEOUT_S", "fast"),
    ("TOKENBROKER_REDIS_TIMEOUT_S", "0"),
    ("TOKENBROKER_REDIS_TIMEOUT_S", "nan"),
    ("TOKENBROKER_PROVIDER_TIMEOUT_S", "121"),
    ("TOKENBROKER_PROVIDER_TIMEOUT_S", "inf"),
    ("TOKENBROKER_LOCK_MS", "99"),
    ("TOKENBROKER_LOCK_MS", "1e4"),
    ("TOKENBROKER_REFRESH_LEAD_S", "-1"),
    ("TOKENBROKER_KEEPALIVE_S", "59"),
    ("TOKENBROKER_CACHE_TTL_S", "-0.5"),
    ("TOKENBROKER_CACHE_TTL_S", "3601"),
]


@pytest.mark.parametrize(("name", "value"), BAD_VALUES, ids=[f"{n}={v}" for n, v in BAD_VALUES])
def test_malformed_variable(name: str, value: str) -> None:
    """A malformed or out-of-range value raises ConfigError naming the variable."""
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env(**{name: value}))


def test_secret_never_in_repr() -> None:
    """The keys stay out of repr (and so out of logs and tracebacks)."""
    config = Config.from_env(env(TOKENBROKER_OLD_SECRETS=base64.b64encode(OLD1).decode()))
    assert B64 not in repr(config) and repr(KEY) not in repr(config)
    assert repr(OLD1) not in repr(config)


def test_lock_must_outlast_a_provider_call() -> None:
    """A refresh lock shorter than a provider call is refused, naming TOKENBROKER_LOCK_MS."""
    with pytest.raises(ConfigError, match="TOKENBROKER_LOCK_MS"):
        Config.from_env(env(TOKENBROKER_LOCK_MS="5000", TOKENBROKER_PROVIDER_TIMEOUT_S="10"))


@pytest.mark.parametrize(("lock_ms", "ok"), [("12000", False), ("25000", False), ("25001", True)])
def test_lock_must_outlast_a_whole_refresh(lock_ms: str, ok: bool) -> None:
    """The lock must outlast discovery plus a token call (2 x the timeout) and a 5 s margin."""
    variables = env(TOKENBROKER_LOCK_MS=lock_ms, TOKENBROKER_PROVIDER_TIMEOUT_S="10")
    if ok:
        assert Config.from_env(variables).lock_ms == int(lock_ms)
    else:
        with pytest.raises(ConfigError, match="TOKENBROKER_LOCK_MS"):
            Config.from_env(variables)


def test_trusted_proxies() -> None:
    """TOKENBROKER_TRUSTED_PROXIES: addresses and CIDRs, none by default; bad ones named."""
    assert Config.from_env(REQUIRED).trusted_proxies == ()
    config = Config.from_env(env(TOKENBROKER_TRUSTED_PROXIES=" 10.0.0.0/8, 192.0.2.7,fd00::/8 "))
    assert [str(n) for n in config.trusted_proxies] == ["10.0.0.0/8", "192.0.2.7/32", "fd00::/8"]
    with pytest.raises(ConfigError, match="TOKENBROKER_TRUSTED_PROXIES"):
        Config.from_env(env(TOKENBROKER_TRUSTED_PROXIES="10.0.0.0/8, proxy.internal"))


def test_worker_metrics_host() -> None:
    """The worker's /metrics binds loopback unless TOKENBROKER_WORKER_METRICS_HOST is set."""
    assert Config.from_env(REQUIRED).worker_metrics_host == "127.0.0.1"
    config = Config.from_env(env(TOKENBROKER_WORKER_METRICS_HOST="10.0.0.5"))
    assert config.worker_metrics_host == "10.0.0.5"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REDIS_URL", "redis+sentinel://:pa55-word@s1:x/main"),
        ("REDIS_URL", "rediss+sentinel://user:pa55-word@s1:26379"),
        ("TOKENBROKER_BASE_URL", "ftp://user:pa55-word@tokens.example.com"),
    ],
)
def test_error_never_shows_a_password(name: str, value: str) -> None:
    """A malformed URL is refused by name, its password masked in the message (it reaches logs)."""
    with pytest.raises(ConfigError, match=name) as caught:
        Config.from_env(env(**{name: value}))
    assert "pa55-word" not in str(caught.value) and MASK in str(caught.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://h:6379/0", "redis://h:6379/0"),
        ("redis://tb:pw@h:6379/0", f"redis://tb:{MASK}@h:6379/0"),
        ("rediss://pw@h:6379/0", f"rediss://{MASK}@h:6379/0"),
        ("redis://h/0?db=1&Password=pw&x=y", f"redis://h/0?db=1&Password={MASK}&x=y"),
        ("redis+sentinel://:p@w@s1:1,s2:2/m", f"redis+sentinel://:{MASK}@s1:1,s2:2/m"),
        ("unix:///run/redis.sock?password=pw", f"unix:///run/redis.sock?password={MASK}"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    """mask_url hides the userinfo password (or a bare userinfo) and a password= parameter."""
    assert mask_url(url) == masked
