"""Checking an OAuth2 app's set-up step by step, as EmailEngine's POST /v1/oauth2/{app}/verify.

Each step is `ok`, `fail` or `skip` with a message and, when it did not pass, a hint. Nothing
is sent to the provider except the discovery document an `oidc` app names; service-account
tokens are not minted yet (issue 11), so that step is skipped and says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from service import errors
from service.apps import App, AppStore
from service.crypto.cipher import Cipher
from service.oauth.discovery import Discovery
from service.oauth.jose import can_sign_rs256

AUTH_METHODS = {"gmailService": "serviceKey", "outlookService": "clientCredentials"}
MINTING = "service-account tokens are not minted by tokenbroker yet"


@dataclass(frozen=True)
class Step:
    """One step of the check, in EmailEngine's terms."""

    id: str
    label: str
    status: str  # ok, fail, skip
    message: str
    hint: str | None = None

    def view(self) -> dict[str, Any]:
        """The step as the API shows it (no hint key when there is none)."""
        return {k: v for k, v in asdict(self).items() if v is not None}


class AppVerifier:
    """Runs the checks of one app with what tokenbroker holds: configuration, keys, discovery."""

    def __init__(self, apps: AppStore, cipher: Cipher, discovery: Discovery, base_url: str):
        self.apps, self.cipher, self.discovery, self.base_url = apps, cipher, discovery, base_url

    async def verify(self, app: App, account: str | None) -> dict[str, Any]:
        """EmailEngine's answer: {app, provider, authMethod, account, ok, steps}."""
        if app.provider == "gmailService":
            steps = self._google_service(app, account)
        elif app.provider == "outlookService":
            steps = [self._config(app, "Client credentials configuration"), _minting()]
        else:
            steps = await self._interactive(app)
        return {
            "app": app.id,
            "provider": app.provider,
            "authMethod": AUTH_METHODS.get(app.provider),
            "account": account,
            "ok": all(step.status != "fail" for step in steps),
            "steps": [step.view() for step in steps],
        }

    def _config(self, app: App, what: str) -> Step:
        missing = [] if app.client_id else ["client ID"]
        missing += [] if app.encrypted_secret is not None else ["client secret"]
        if missing:
            return Step(
                "config",
                "Configuration",
                "fail",
                f"{what} is incomplete: no {' and no '.join(missing)}",
                "Set the missing values with PUT /v1/oauth2/{app}.",
            )
        return Step("config", "Configuration", "ok", f"{what} is present")

    def _google_service(self, app: App, account: str | None) -> list[Step]:
        if app.encrypted_service_key is None or not app.fields.get("serviceClient"):
            config = Step(
                "config",
                "Configuration",
                "fail",
                "Service account key or client ID is missing",
                "Set serviceKey and serviceClient with PUT /v1/oauth2/{app}.",
            )
            return [config]
        config = Step("config", "Configuration", "ok", "Service account key is present")
        key = self.cipher.decrypt(app.encrypted_service_key, f"app:{app.id}:serviceKey")
        if can_sign_rs256(key):
            sign = Step(
                "sign",
                "Sign assertion with service key",
                "ok",
                "Assertion signed locally with the service account key",
            )
        else:
            sign = Step(
                "sign",
                "Sign assertion with service key",
                "fail",
                "The service key could not sign an assertion",
                "Paste the private_key (PEM) of the service account's JSON key file.",
            )
        steps = [config, sign, _minting()]
        if account is None:
            steps[-1] = Step(*_minting_fields(), hint="Give `account` to name the mailbox.")
        return steps

    async def _interactive(self, app: App) -> list[Step]:
        steps = [self._config(app, "Client ID, client secret and redirect URL")]
        if steps[0].status == "ok":
            steps[0] = Step(
                "config",
                "Client configuration",
                "ok",
                "Client ID, client secret and redirect URL are set",
                f"Register {app.callback_url(self.base_url)} as a redirect URI at the provider.",
            )
        steps.append(
            Step(
                "interactive",
                "End-user authorization",
                "skip",
                "This is an interactive (3-legged) OAuth2 application",
                "Connect a test email account using this application to fully verify the "
                "configuration - the authorization, scopes and token exchange are validated "
                "when a user grants access.",
            )
        )
        steps.append(await self._endpoints(app))  # after EmailEngine's two, an addition
        return steps

    async def _endpoints(self, app: App) -> Step:
        label = "Provider endpoints"
        try:
            urls = [await self.discovery.lookup(app, n) for n in ("authorization_url", "token_url")]
        except errors.ApiError as exc:
            return Step("endpoints", label, "fail", exc.message, "Check the app's issuer.")
        if None in urls:
            return Step(
                "endpoints",
                label,
                "fail",
                "The authorization or token endpoint is unknown",
                "Set authorizationUrl and tokenUrl, or an issuer to discover them from.",
            )
        return Step("endpoints", label, "ok", "Authorization and token endpoints are known")


def _minting_fields() -> tuple[str, str, str, str]:
    return ("token", "Service account token", "skip", MINTING)


def _minting() -> Step:
    return Step(*_minting_fields(), hint="Token minting for service accounts is issue 11.")
