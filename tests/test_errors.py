"""The error tree: stable codes and statuses, every class naming its own code, two roots."""

from __future__ import annotations

import pytest

from service import errors
from service.admin_auth import LoginFailed, LoginThrottled
from service.config import ConfigError
from service.crypto.cipher import DecryptError
from service.oauth.jose import JoseFailure
from service.ops.backup_format import BackupError
from service.web.admin.middleware import CsrfFailed

# The API contract: codes clients see, by HTTP status (these never change).
CONTRACT = {
    400: "ConsentDenied InvalidAccountId InvalidAppId InvalidCertificate InvalidInput "
    "InvalidJson InvalidLink InvalidCursor "
    "InvalidMinValidity InvalidState InvalidWebhookHeader RedirectUrlNotAllowed "
    "UnknownQueryParameter InvalidResource ScopeNotConsented MixedResources",
    401: "Unauthorized LoginFailed",
    403: "ApiEndpointDisabled BrowserMismatch Forbidden FormTokenInvalid "
    "OperatorAuthorityRequired ScopesMissing SettingNotAllowed UserMismatch CsrfFailed "
    "ResourceNotAllowed",
    404: "AccountNotFound AppNotFound DeliveryNotFound RouteNotFound TokenNotFound",
    405: "MethodNotAllowed",
    409: "AccountAppMismatch AppExists AppInUse NoNextCredential ReauthRequired "
    "WebhookNotConfigured",
    410: "LinkExpired LinkUsed",
    413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
    429: "LoginThrottled",
    500: "InternalError",
    501: "ProviderTypeUnsupported",
    502: "CodeExchangeFailed IdTokenInvalid IdentityUnavailable NoRefreshToken",
    503: "AppCredentialsError ProviderUnavailable StoreUnavailable",
}
ROOTS = {"NotFound": 404, "Conflict": 409, "Gone": 410, "BadGateway": 502, "Unavailable": 503}


def _tree() -> list[type[errors.ApiError]]:
    found, pending = [], list(errors.ApiError.__subclasses__())
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_codes_and_statuses_are_the_contract() -> None:
    """Every code of the contract keeps its status; besides it only the five roots exist."""
    assert {LoginFailed, LoginThrottled, CsrfFailed} <= set(_tree())
    expected = {code: status for status, codes in CONTRACT.items() for code in codes.split()}
    assert errors.statuses() == {**expected, **ROOTS}


def test_every_class_spells_its_code_and_no_code_repeats() -> None:
    """A class never inherits its code: renaming one can never change what clients see."""
    tree = _tree()
    assert all("code" in vars(cls) and cls.code == cls.__name__ for cls in tree)
    assert all(cls.__doc__ for cls in tree)
    assert len({cls.code for cls in tree}) == len(tree)


@pytest.mark.parametrize(
    ("root", "status"),
    [(errors.NotFound, 404), (errors.Conflict, 409), (errors.Unavailable, 503)],
)
def test_a_root_catches_its_status(root: type[errors.ApiError], status: int) -> None:
    """Every error under a root answers the root's status (except clauses may use the root)."""
    under = [cls for cls in _tree() if issubclass(cls, root)]
    assert len(under) > 1 and {cls.status for cls in under} == {status}


def test_faults_are_not_http_errors() -> None:
    """Configuration, decryption, backup and JOSE failures share the Fault root, not ApiError."""
    for fault in (ConfigError, DecryptError, BackupError, JoseFailure):
        assert issubclass(fault, errors.Fault) and not issubclass(fault, errors.ApiError)
