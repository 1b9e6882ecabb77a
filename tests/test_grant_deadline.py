"""A grant's known deadline: from refresh_token_expires_in or the app's declaration."""

from __future__ import annotations

import pytest

from service import errors
from service.grant_deadline import at_grant, check_declarations, declared, on_refresh
from service.oauth.client import Granted, parse_granted

NOW = 1_900_000_000_000
HOUR = 3_600_000


def test_declarations_set_seven_days_for_google_testing_and_a_day_for_spas() -> None:
    """PublishingStatus testing (gmail, oidc): 7 days; platform spa (outlook): 24 hours."""
    assert declared("gmail", {"publishingStatus": "testing"}, NOW) == (
        NOW + 168 * HOUR,
        "publishingStatus:testing",
    )
    assert declared("oidc", {"publishingStatus": "testing"}, NOW) is not None
    assert declared("outlook", {"platform": "spa"}, NOW) == (NOW + 24 * HOUR, "platform:spa")
    assert declared("gmail", {"publishingStatus": "production"}, NOW) is None
    assert declared("outlook", {"platform": "web"}, NOW) is None
    assert declared("outlook", {"publishingStatus": "testing"}, NOW) is None


def test_the_earliest_known_deadline_wins_at_a_new_grant() -> None:
    """A response's refresh_token_expires_in and a declaration: the sooner one is kept."""
    testing = {"publishingStatus": "testing"}
    assert at_grant("gmail", testing, NOW + HOUR, NOW) == (NOW + HOUR, "refresh_token_expires_in")
    assert at_grant("gmail", testing, NOW + 999 * HOUR, NOW) == (
        NOW + 168 * HOUR,
        "publishingStatus:testing",
    )
    assert at_grant("gmail", {}, None, NOW) is None


def test_a_refresh_moves_it_only_when_it_rotates() -> None:
    """Without a new refresh token, the recorded deadline stays (None: leave it)."""
    assert on_refresh(True, NOW + HOUR) == (NOW + HOUR, "refresh_token_expires_in")
    assert on_refresh(False, NOW + HOUR) is None
    assert on_refresh(True, None) is None


@pytest.mark.parametrize(
    ("kind", "pairs", "field"),
    [
        ("outlook", {"publishingStatus": "testing"}, "publishingStatus"),
        ("gmail", {"platform": "spa"}, "platform"),
        ("gmail", {"publishingStatus": "beta"}, "publishingStatus"),
        ("outlook", {"platform": "desktop"}, "platform"),
    ],
)
def test_declarations_of_other_types_or_unknown_values_are_refused(
    kind: str, pairs: dict[str, str], field: str
) -> None:
    """A declaration is checked against the app's provider type and its values."""
    with pytest.raises(errors.InvalidInput) as caught:
        check_declarations(kind, pairs)
    assert caught.value.details == {"field": field}


def test_token_response_refresh_token_expires_in_is_read() -> None:
    """refresh_token_expires_in (number or numeric string) counts from the request's send."""
    body = {"access_token": "a", "refresh_token": "r", "refresh_token_expires_in": "7200"}
    granted = parse_granted(body, NOW)
    assert isinstance(granted, Granted) and granted.refresh_expires_at_ms == NOW + 2 * HOUR
    for bad in (0, -5, "soon", None, True, [1]):
        parsed = parse_granted({**body, "refresh_token_expires_in": bad}, NOW)
        assert isinstance(parsed, Granted) and parsed.refresh_expires_at_ms is None
