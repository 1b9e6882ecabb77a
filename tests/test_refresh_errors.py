"""The one mapping from a failed refresh to the HTTP error every caller raises."""

from __future__ import annotations

import pytest

from service import errors
from service.accounts import Account, Status
from service.oauth.client import Failure
from service.refresh_errors import REAUTH, needs_reauth, reauth_required, refresh_error
from service.refresh_results import RefreshFailed


def account(status: Status = Status.ACTIVE) -> Account:
    """A bare account with `status`."""
    return Account(id="a", app="app", provider="oidc", user="u", status=status)


@pytest.mark.parametrize(
    ("failure", "status", "expected", "http"),
    [
        (Failure("permanent", "invalid_grant", status=400), Status.ACTIVE, "ReauthRequired", 409),
        (Failure("transient", "busy"), Status.REAUTH_REQUIRED, "ReauthRequired", 409),
        (Failure("app", "invalid_client", status=401), Status.ACTIVE, "AppCredentialsError", 503),
        (Failure("transient", "timeout"), Status.ACTIVE, "ProviderUnavailable", 503),
    ],
)
def test_each_failure_has_one_error(
    failure: Failure, status: Status, expected: str, http: int
) -> None:
    """Permanent or a non-active account: ReauthRequired; app: credentials; else unavailable."""
    error = refresh_error(RefreshFailed(account(status), failure))
    assert (error.code, error.status) == (expected, http)
    assert error.details == failure.details()
    assert needs_reauth(RefreshFailed(account(status), failure)) == (expected == "ReauthRequired")


def test_retry_after_is_the_providers_or_five_seconds() -> None:
    """ProviderUnavailable carries Retry-After: the provider's wait, else 5 s."""
    told = refresh_error(RefreshFailed(account(), Failure("transient", "x", retry_after_s=7.5)))
    untold = refresh_error(RefreshFailed(account(), Failure("transient", "x")))
    assert told.headers == {"Retry-After": "7"} and untold.headers == {"Retry-After": "5"}


def test_an_account_already_waiting_names_its_recorded_failure() -> None:
    """reauth_required() carries the account's reason and last error, with the one message."""
    waiting = Account(
        id="a",
        app="app",
        provider="oidc",
        user="u",
        status=Status.REAUTH_REQUIRED,
        reason="revoked",
        last_error={"error": "invalid_grant", "time": "2026-01-01T00:00:00.000Z"},
    )
    error = reauth_required(waiting)
    assert isinstance(error, errors.ReauthRequired) and error.message == REAUTH
    assert error.details == {"reason": "revoked", **(waiting.last_error or {})}
