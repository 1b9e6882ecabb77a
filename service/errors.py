"""Domain errors: HTTP answers with a stable code under ApiError, the others under Fault.

The one middleware (service/web/middleware.py) turns an ApiError into its JSON answer;
a Fault never reaches a client as such (its caller turns it into an ApiError, an exit
status or a log line). Codes and statuses are the API contract: each class spells its code
out, so that renaming a class never changes one (tests/test_errors.py holds the list).

    Exception
    ├── ApiError                  400 BadRequest (the base; stray HTTP errors use it)
    │   ├── InvalidInput          400  a request field is wrong
    │   │   ├── InvalidJson, InvalidAccountId, InvalidAppId, InvalidMinValidity
    │   │   ├── InvalidResource, ScopeNotConsented, MixedResources  (the token endpoint)
    │   │   ├── RedirectUrlNotAllowed, InvalidWebhookHeader, InvalidLink
    │   │   └── InvalidState, ConsentDenied                  (the OAuth callback)
    │   ├── Unauthorized          401  no valid API token
    │   │   └── LoginFailed                                  (service/admin_auth.py)
    │   ├── Forbidden             403  the caller may not do this
    │   │   ├── ApiEndpointDisabled, SettingNotAllowed, OperatorAuthorityRequired
    │   │   ├── ScopesMissing, UserMismatch, BrowserMismatch (a finished consent)
    │   │   ├── ResourceNotAllowed                           (an API token's resources)
    │   │   └── FormTokenInvalid, CsrfFailed                 (pages; CsrfFailed: web/admin)
    │   ├── NotFound              404  no such thing
    │   │   └── AccountNotFound, AppNotFound, TokenNotFound, DeliveryNotFound, RouteNotFound
    │   ├── MethodNotAllowed      405
    │   ├── Conflict              409  the thing's state forbids it
    │   │   └── AppInUse, AppExists, AccountAppMismatch, WebhookNotConfigured, ReauthRequired
    │   ├── Gone                  410  a hosted link that no longer works
    │   │   └── LinkExpired, LinkUsed
    │   ├── PayloadTooLarge       413
    │   ├── UnsupportedMediaType  415
    │   ├── LoginThrottled        429                        (service/admin_auth.py)
    │   ├── InternalError         500
    │   ├── BadGateway            502  the provider answered something unusable
    │   │   └── CodeExchangeFailed, NoRefreshToken, IdTokenInvalid, IdentityUnavailable
    │   └── Unavailable           503  a dependency cannot serve now (retry later)
    │       └── StoreUnavailable, ProviderUnavailable, AppCredentialsError
    └── Fault                          not an HTTP answer
        ├── ConfigError                the environment is wrong       (service/config.py)
        ├── DecryptError               a sealed value does not open   (service/crypto/cipher.py)
        ├── BackupError                a bad backup file or record    (service/ops/backup_format.py)
        └── JoseFailure                a token not to be trusted      (service/oauth/jose.py)

NotFound, Conflict, Gone, BadGateway and Unavailable are roots for `except` clauses and the
reader, never raised themselves; InvalidInput, Unauthorized and Forbidden are roots and codes.
A refresh failure becomes one of these in one place: service/refresh_errors.py.
"""

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


class Fault(Exception):
    """An error that is not an HTTP answer: configuration, decryption, backups, JOSE."""


def statuses() -> dict[str, int]:
    """Every ApiError code defined so far (the whole tree) with its HTTP status."""
    found: dict[str, int] = {}
    pending = list(ApiError.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.code] = cls.status
        pending.extend(cls.__subclasses__())
    return found


# 400 ---------------------------------------------------------------------------------------


class InvalidInput(ApiError):
    """A field of the request is missing, malformed or out of range; details name it."""

    code = "InvalidInput"
    status = 400


class InvalidJson(InvalidInput):
    """The request body is not a JSON object."""

    code = "InvalidJson"


class InvalidCertificate(InvalidInput):
    """A client certificate or its key does not parse, or the key is not the certificate's."""

    code = "InvalidCertificate"


class InvalidAccountId(InvalidInput):
    """An account id is empty, too long or has characters an id cannot have."""

    code = "InvalidAccountId"


class InvalidAppId(InvalidInput):
    """An OAuth2 app id is empty, too long or has characters an id cannot have."""

    code = "InvalidAppId"


class InvalidMinValidity(InvalidInput):
    """The token endpoint's minValidity is not a number of seconds in range."""

    code = "InvalidMinValidity"


class InvalidResource(InvalidInput):
    """The token endpoint's resource is no known name or audience URI, or not for this app."""

    code = "InvalidResource"


class ScopeNotConsented(InvalidInput):
    """The token endpoint's scopes name one the account's user never consented to."""

    code = "ScopeNotConsented"


class MixedResources(InvalidInput):
    """The token endpoint's scopes belong to two resources (one token serves one)."""

    code = "MixedResources"


class RedirectUrlNotAllowed(InvalidInput):
    """A redirectUrl that the operator's allowedRedirectUrls setting does not allow."""

    code = "RedirectUrlNotAllowed"


class InvalidWebhookHeader(InvalidInput):
    """A custom webhook header that is malformed or one the service sets itself."""

    code = "InvalidWebhookHeader"


class InvalidCursor(InvalidInput):
    """A paging cursor that no page handed out."""

    code = "InvalidCursor"


class InvalidLink(InvalidInput):
    """A hosted consent link that is not one of ours (bad signature or shape)."""

    code = "InvalidLink"


class InvalidState(InvalidInput):
    """An OAuth callback whose state is missing, forged or already used."""

    code = "InvalidState"


class ConsentDenied(InvalidInput):
    """The user (or the provider) refused the consent at the provider."""

    code = "ConsentDenied"


# 401, 403 ----------------------------------------------------------------------------------


class Unauthorized(ApiError):
    """No API token, an unknown one or an expired one."""

    code = "Unauthorized"
    status = 401


class Forbidden(ApiError):
    """The API token lacks the scope or is bound to another account."""

    code = "Forbidden"
    status = 403


class ApiEndpointDisabled(Forbidden):
    """The oauth-token endpoint is switched off in the operator's settings."""

    code = "ApiEndpointDisabled"


class SettingNotAllowed(Forbidden):
    """A setting that cannot be changed through this route."""

    code = "SettingNotAllowed"


class OperatorAuthorityRequired(Forbidden):
    """A change that needs the operator (a `*` token or the settings pages)."""

    code = "OperatorAuthorityRequired"


class ScopesMissing(Forbidden):
    """The user granted fewer scopes than the app requires."""

    code = "ScopesMissing"


class ResourceNotAllowed(Forbidden):
    """The API token is limited to other resources than the one asked for."""

    code = "ResourceNotAllowed"


class UserMismatch(Forbidden):
    """The consent was given by another user than the account's (or the expected) one."""

    code = "UserMismatch"


class BrowserMismatch(Forbidden):
    """A consent finished in another browser than the one that started it."""

    code = "BrowserMismatch"


class FormTokenInvalid(Forbidden):
    """A hosted link's start form that did not come from its page."""

    code = "FormTokenInvalid"


# 404, 405 ----------------------------------------------------------------------------------


class NotFound(ApiError):
    """Root of the 404s: the thing asked for does not exist (never raised itself)."""

    code = "NotFound"
    status = 404


class AccountNotFound(NotFound):
    """No account with that id."""

    code = "AccountNotFound"


class AppNotFound(NotFound):
    """No OAuth2 app with that id."""

    code = "AppNotFound"


class TokenNotFound(NotFound):
    """No API token with that id."""

    code = "TokenNotFound"


class DeliveryNotFound(NotFound):
    """No webhook delivery (dead letter) with that id."""

    code = "DeliveryNotFound"


class RouteNotFound(NotFound):
    """No route at that path."""

    code = "RouteNotFound"


class MethodNotAllowed(ApiError):
    """The route exists but not for this HTTP method."""

    code = "MethodNotAllowed"
    status = 405


# 409, 410 ----------------------------------------------------------------------------------


class Conflict(ApiError):
    """Root of the 409s: the thing's current state forbids the change (never raised itself)."""

    code = "Conflict"
    status = 409


class AppInUse(Conflict):
    """The app has accounts: it cannot be deleted nor its endpoints changed."""

    code = "AppInUse"


class AppExists(Conflict):
    """An OAuth2 app with that id exists already."""

    code = "AppExists"


class AccountAppMismatch(Conflict):
    """The account exists on another app; delete it to add it anew."""

    code = "AccountAppMismatch"


class NoNextCredential(Conflict):
    """The app holds no next client secret or certificate to promote."""

    code = "NoNextCredential"


class WebhookNotConfigured(Conflict):
    """No webhook URL is set, so there is nothing to send a test event to."""

    code = "WebhookNotConfigured"


class ReauthRequired(Conflict):
    """The account's grant no longer works: its user must consent again."""

    code = "ReauthRequired"


class Gone(ApiError):
    """Root of the 410s: a hosted link that no longer works (never raised itself)."""

    code = "Gone"
    status = 410


class LinkExpired(Gone):
    """The hosted consent link is past its lifetime."""

    code = "LinkExpired"


class LinkUsed(Gone):
    """The hosted consent link was used already."""

    code = "LinkUsed"


# 413, 415, 500 -----------------------------------------------------------------------------


class PayloadTooLarge(ApiError):
    """The request body is larger than the configured maximum."""

    code = "PayloadTooLarge"
    status = 413


class UnsupportedMediaType(ApiError):
    """The request body is not JSON (or not the form the route takes)."""

    code = "UnsupportedMediaType"
    status = 415


class InternalError(ApiError):
    """A bug: logged with its traceback; the client learns nothing more."""

    code = "InternalError"
    status = 500


# 502, 503 ----------------------------------------------------------------------------------


class BadGateway(ApiError):
    """Root of the 502s: the provider answered something unusable (never raised itself)."""

    code = "BadGateway"
    status = 502


class CodeExchangeFailed(BadGateway):
    """The provider refused the authorization code."""

    code = "CodeExchangeFailed"


class NoRefreshToken(BadGateway):
    """The provider granted tokens without a refresh token."""

    code = "NoRefreshToken"


class IdTokenInvalid(BadGateway):
    """The provider's id_token failed verification."""

    code = "IdTokenInvalid"


class IdentityUnavailable(BadGateway):
    """The user's identity could not be established (id_token or userinfo)."""

    code = "IdentityUnavailable"


class Unavailable(ApiError):
    """Root of the 503s: a dependency cannot serve now; retry later (never raised itself)."""

    code = "Unavailable"
    status = 503


class StoreUnavailable(Unavailable):
    """Redis cannot be reached."""

    code = "StoreUnavailable"


class ProviderUnavailable(Unavailable):
    """The provider could not be reached or refused for now; Retry-After says when to retry."""

    code = "ProviderUnavailable"


class AppCredentialsError(Unavailable):
    """The provider rejects the app's client credentials; the operator must fix the app."""

    code = "AppCredentialsError"


class ProviderTypeUnsupported(ApiError):
    """The app's provider type cannot do this yet (service-account token minting, issue #11)."""

    code = "ProviderTypeUnsupported"
    status = 501


class UnknownQueryParameter(InvalidInput):
    """The request's query string has a parameter the route does not know (never ignored)."""

    code = "UnknownQueryParameter"
