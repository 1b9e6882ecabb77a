"""Domain errors with a stable code, turned into HTTP answers by one middleware."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An error a client should see: HTTP status, stable code, message, optional details."""

    status = 400
    code = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers or {}


def _error(name: str, status: int, code: str | None = None) -> type[ApiError]:
    return type(name, (ApiError,), {"status": status, "code": code or name})


InvalidInput = _error("InvalidInput", 400)
InvalidJson = _error("InvalidJson", 400)
InvalidAccountId = _error("InvalidAccountId", 400)
InvalidAppId = _error("InvalidAppId", 400)
InvalidMinValidity = _error("InvalidMinValidity", 400)
RedirectUrlNotAllowed = _error("RedirectUrlNotAllowed", 400)
InvalidState = _error("InvalidState", 400)
ConsentDenied = _error("ConsentDenied", 400)
InvalidLink = _error("InvalidLink", 400)
Unauthorized = _error("Unauthorized", 401)
Forbidden = _error("Forbidden", 403)
ScopesMissing = _error("ScopesMissing", 403)
UserMismatch = _error("UserMismatch", 403)
ApiEndpointDisabled = _error("ApiEndpointDisabled", 403)
SettingNotAllowed = _error("SettingNotAllowed", 403)
OperatorAuthorityRequired = _error("OperatorAuthorityRequired", 403)
AccountNotFound = _error("AccountNotFound", 404)
AppNotFound = _error("AppNotFound", 404)
TokenNotFound = _error("TokenNotFound", 404)
DeliveryNotFound = _error("DeliveryNotFound", 404)
RouteNotFound = _error("RouteNotFound", 404)
MethodNotAllowed = _error("MethodNotAllowed", 405)
AppInUse = _error("AppInUse", 409)
AppExists = _error("AppExists", 409)
AccountAppMismatch = _error("AccountAppMismatch", 409)
WebhookNotConfigured = _error("WebhookNotConfigured", 409)
ReauthRequired = _error("ReauthRequired", 409)
LinkExpired = _error("LinkExpired", 410)
LinkUsed = _error("LinkUsed", 410)
PayloadTooLarge = _error("PayloadTooLarge", 413)
UnsupportedMediaType = _error("UnsupportedMediaType", 415)
InternalError = _error("InternalError", 500)
CodeExchangeFailed = _error("CodeExchangeFailed", 502)
NoRefreshToken = _error("NoRefreshToken", 502)
IdTokenInvalid = _error("IdTokenInvalid", 502)
IdentityUnavailable = _error("IdentityUnavailable", 502)
StoreUnavailable = _error("StoreUnavailable", 503)
ProviderUnavailable = _error("ProviderUnavailable", 503)
AppCredentialsError = _error("AppCredentialsError", 503)
InvalidWebhookHeader = _error("InvalidWebhookHeader", 400)
BrowserMismatch = _error("BrowserMismatch", 403)  # a consent finished in another browser
FormTokenInvalid = _error("FormTokenInvalid", 403)  # a hosted link's start form not from its page
