"""A failed refresh as the one HTTP error every caller raises: token endpoint, API and pages."""

from __future__ import annotations

from service import errors
from service.accounts import Account, Status
from service.refresh_results import RefreshFailed

REAUTH = "the account needs to be re-authorized by its user"
DEFAULT_RETRY_S = 5  # Retry-After when the provider named no wait


def reauth_required(account: Account) -> errors.ReauthRequired:
    """The error for an account that already waits for its user's consent (nothing tried)."""
    details = {"reason": account.reason, **(account.last_error or {})}
    return errors.ReauthRequired(REAUTH, details=details)


def needs_reauth(failed: RefreshFailed) -> bool:
    """True when only a new consent helps: the grant was refused, or the account says so."""
    return failed.failure.kind == "permanent" or failed.account.status != Status.ACTIVE


def refresh_error(failed: RefreshFailed) -> errors.ApiError:
    """ReauthRequired (409), AppCredentialsError (503) or ProviderUnavailable (503, Retry-After).

    The details are the provider's answer (Failure.details: never a token).
    """
    failure = failed.failure
    details = failure.details()
    if needs_reauth(failed):
        return errors.ReauthRequired(REAUTH, details=details)
    if failure.kind == "app":
        return errors.AppCredentialsError(
            "the provider rejected the app's client credentials", details=details
        )
    retry_s = int(failure.retry_after_s or DEFAULT_RETRY_S)
    return errors.ProviderUnavailable(
        "the provider could not refresh the token; retry later",
        details=details,
        headers={"Retry-After": str(retry_s)},
    )
