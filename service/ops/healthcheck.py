"""`tokenbroker web --check`: the web process's container health check (GET /health here)."""

from __future__ import annotations

import urllib.error
import urllib.request

from service.config import Config

TIMEOUT_S = 3.0
ANY_ADDRESS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapping only


def health_url(config: Config) -> str:
    """The /health URL of the web process bound by this configuration, on this host."""
    host = ANY_ADDRESS.get(config.host, config.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{config.port}/health"


def web_healthy(config: Config, timeout_s: float = TIMEOUT_S) -> bool:
    """True when the web process on this host answers /health with 200 within the timeout."""
    try:
        with urllib.request.urlopen(health_url(config), timeout=timeout_s) as resp:  # noqa: S310 - http to our own port
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False
