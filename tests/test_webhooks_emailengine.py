"""EmailEngine-style webhook bodies, headers and signatures against the recorded EmailEngine."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from service import errors
from service.webhooks.emailengine import ee_headers, ee_request, ee_signature
from service.webhooks.events import event_json
from service.webhooks.headers import check_headers
from tests.support.ee_receiver import ee_verify, recorded, recorded_secret, recorded_shapes, shape

NOW = 1_796_533_945_392
EE_SET = {"content-type", "user-agent", "x-api-key"}  # sent by EmailEngine, not by undici


def test_receiver_rule_verifies_every_recorded_delivery() -> None:
    """The receiver's rule verifies all 30 recorded signatures, and fails with another key."""
    entries = recorded()
    assert len(entries) == 30
    for entry in entries:
        headers, body = dict(entry["headers"]), entry["body"].encode()
        assert ee_verify(recorded_secret(), body, headers), entry["json"]
        assert not ee_verify(recorded_secret() + "x", body, headers)
        assert not ee_verify(recorded_secret(), body + b" ", headers)


def test_our_signature_equals_the_recorded_ones() -> None:
    """ee_signature gives EmailEngine's X-EE-Wh-Signature for every recorded body."""
    for entry in recorded():
        expected = dict(entry["headers"])["X-EE-Wh-Signature"]
        assert ee_signature(recorded_secret(), entry["body"].encode()) == expected


def test_bodies_have_the_recorded_shape() -> None:
    """accountAdded, accountDeleted and authenticationError bodies have the recorded keys."""
    error: dict[str, Any] = {"error": "invalid_grant", "error_description": "x", "httpStatus": 400}
    ours: dict[str, dict[str, Any]] = {
        "accountAdded": {"user": "u@example.test", "provider": "oidc"},
        "accountDeleted": {"user": "u@example.test", "provider": "oidc"},
        "authenticationError": {**error, "user": "u", "provider": "gmail", "reason": "x"},
    }
    for event, data in ours.items():
        stored = event_json(event, "a-gmail-2", "app1", data, NOW)
        body, _ = ee_request(stored, "http://127.0.0.1:17301", "s", {}, 0, NOW)
        got = shape(orjson.loads(body))
        if event == "authenticationError":  # the token endpoint answered: EmailEngine adds it
            assert set(got["data"].pop("tokenRequest")) == {
                "grant",
                "provider",
                "status",
                "response",
            }
        assert got in recorded_shapes(event), (event, got, recorded_shapes(event))
        assert b'"id"' not in body  # the event id travels in X-EE-Wh-Event-Id only


def test_auth_error_message_as_emailengine_words_it() -> None:
    """AuthenticationError's response reads like EmailEngine's token error message."""
    data = {"error": "invalid_grant", "error_description": "Bad", "httpStatus": 400}
    stored = event_json("authenticationError", "a", "app", {**data, "provider": "gmail"}, NOW)
    body = orjson.loads(ee_request(stored, "http://x", "s", {}, 0, NOW)[0])
    expected = "Token request failed for gmail (refresh_token, HTTP 400): invalid_grant - Bad"
    assert body["data"]["response"] == expected
    assert body["data"]["serverResponseCode"] == "OauthRenewError"


def test_headers_in_emailengine_order() -> None:
    """Headers come in the recorded order: EE's own, custom ones, then event id and signature."""
    stored = event_json("accountAdded", "a-gmail-2", "app", {}, NOW - 1000)
    _, headers = ee_request(stored, "http://x", "s", {"X-Api-Key": "hdr-secret"}, 2, NOW)
    mine = [name for name in headers if name.lower().startswith("x-ee-") or name.lower() in EE_SET]
    theirs = [n for n, _ in recorded()[0]["headers"]]
    theirs = [n for n in theirs if n.lower().startswith("x-ee-") or n.lower() in EE_SET]
    assert mine == theirs
    assert headers["X-EE-Wh-Attempts-Made"] == "2" and headers["X-EE-Wh-Queued-Time"] == "1s"
    assert headers["X-EE-Wh-Event-Id"] == headers["X-EE-Wh-Id"] == orjson.loads(stored)["id"]


def test_custom_header_replaces_user_agent_once() -> None:
    """A custom User-Agent replaces ours (as in EmailEngine) and is sent once."""
    stored = event_json("accountAdded", "a", "app", {}, NOW)
    headers = ee_headers(orjson.loads(stored), b"{}", "s", {"user-agent": "mine"}, 0, NOW)
    assert [v for k, v in headers.items() if k.lower() == "user-agent"] == ["mine"]


def test_custom_headers_cannot_take_emailengine_names() -> None:
    """A custom header named X-EE-Wh-* is refused when saved (it would forge the framing)."""
    for name in ("X-EE-Wh-Signature", "x-ee-wh-event-id"):
        with pytest.raises(errors.InvalidWebhookHeader) as caught:
            check_headers({name: "v"})
        assert (caught.value.details or {}).get("reason") == "reserved"
