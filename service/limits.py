"""Input limits, defined once: the handlers' checks and the OpenAPI schemas both read them."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """An integer input: its bounds (both inclusive) and the value taken when it is absent."""

    low: int
    high: int
    default: int

    def schema(self) -> dict[str, int]:
        """The JSON Schema keywords of these bounds: minimum, maximum and default."""
        return {"minimum": self.low, "maximum": self.high, "default": self.default}


# Lengths in characters (of a JSON string, a path segment or a form field).
ACCOUNT_ID_MAX = 256
APP_ID_MAX = 64
USER_MAX = 320  # an account's user: an e-mail address at most
NAME_MAX = 256  # an account's or a consent's display name
URL_MAX = 2048  # a consent's or an imported account's redirectUrl
APP_TEXT_MAX = 2048  # each text field of an app: name, clientId, tenant, cloud and its URLs
CLIENT_SECRET_MAX = 4096
CERTIFICATE_MAX = 16384  # an app's certificate or its private key, PEM
REFRESH_TOKEN_MAX = 8192
ACCESS_TOKEN_MAX = 16384
SCOPE_MAX = 512  # one scope
SCOPES_MAX = 100  # scopes in one list (or one space-separated string)
HEADER_NAME_MAX = 128  # a webhook header's name
HEADER_VALUE_MAX = 4096  # a webhook header's value
DESCRIPTION_MAX = 256  # an API token's description
SEARCH_MAX = 256  # the settings pages' account search (longer is cut)
MSG_ID_MAX = 64  # a webhook delivery id: "msg_" and up to 60 characters
SERVICE_SECRET_MAX = 256  # serviceSecret, the key of EmailEngine-style webhook signatures
STRING_MAX = 1024  # any other string field
MAX_BODY_BYTES = 64 * 1024  # a request body

# Integers: query parameters and body fields.
PAGE = Range(0, 1_000_000, 0)  # GET /v1/accounts page (and the settings pages')
PAGE_SIZE = Range(1, 1000, 20)  # GET /v1/accounts pageSize
AUDIT_LIMIT = Range(1, 500, 50)  # GET /v1/audit limit (and the audit page's)
DELIVERIES = Range(1, 1000, 100)  # GET /v1/webhooks/deliveries limit
MIN_VALIDITY_S = Range(0, 1800, 60)  # GET .../oauth-token minValidity
LINK_TTL_S = Range(60, 30 * 86_400, 86_400)  # a hosted link's ttl
