"""Classifying token-endpoint answers: transient, permanent (with reason) or app-level."""

from __future__ import annotations

import pytest

from service.oauth.client import Granted, classify, parse_granted


@pytest.mark.parametrize(
    ("status", "body", "kind", "reason"),
    [
        (400, {"error": "invalid_grant"}, "permanent", "invalidGrant"),
        (
            400,
            {"error": "invalid_grant", "error_description": "AADSTS70008: expired"},
            "permanent",
            "expired",
        ),
        (400, {"error": "invalid_grant", "error_codes": [700082]}, "permanent", "expired"),
        (400, {"error": "invalid_grant", "error_codes": [50173]}, "permanent", "revoked"),
        (400, {"error": "invalid_grant", "error_codes": [70043]}, "permanent", "signInFrequency"),
        (
            400,
            {"error": "invalid_grant", "error_description": "AADSTS65001: no consent"},
            "permanent",
            "consentRequired",
        ),
        (
            400,
            {"error": "invalid_grant", "error_subtype": "invalid_rapt"},
            "permanent",
            "sessionPolicy",
        ),
        (
            400,
            {"error": "interaction_required", "error_codes": [50076]},
            "permanent",
            "interactionRequired",
        ),
        (401, {"error": "invalid_client"}, "app", "appCredentials"),
        (400, {"error": "unauthorized_client"}, "app", "appCredentials"),
        (
            401,
            {"error": "invalid_client", "error_description": "AADSTS7000222: secret expired"},
            "app",
            "appCredentials",
        ),
        (400, {"error": "invalid_grant", "error_codes": [50196]}, "transient", None),
        (500, None, "transient", None),
        (503, {"error": "temporarily_unavailable"}, "transient", None),
        (429, {}, "transient", None),
        (403, {"error": "rate_limit_exceeded"}, "transient", None),
    ],
)
def test_classify(status: int, body: object, kind: str, reason: str | None) -> None:
    """Each provider answer maps to the right failure kind and reason."""
    failure = classify(status, body, None)
    assert failure.kind == kind
    assert failure.reason == reason


def test_retry_after() -> None:
    """Retry-After seconds are kept (capped), unparseable ones dropped."""
    assert classify(429, {}, "7").retry_after_s == 7
    assert classify(429, {}, "99999").retry_after_s == 3600
    assert classify(429, {}, "Wed, 21 Oct 2015 07:28:00 GMT").retry_after_s is None


def test_parse_granted_keeps_refresh_token_absent() -> None:
    """A response without refresh_token says so (the caller keeps the old one)."""
    granted = parse_granted({"access_token": "a", "expires_in": "3599", "scope": "a b"}, 1000)
    assert isinstance(granted, Granted)
    assert granted.refresh_token is None
    assert granted.expires_at_ms == 1000 + 3_599_000
    assert granted.scopes == ["a", "b"]


def test_parse_granted_without_access_token_is_transient() -> None:
    """A 200 without an access token is a transient failure, not a crash."""
    assert parse_granted({"token_type": "Bearer"}, 0).kind == "transient"  # type: ignore[union-attr]
