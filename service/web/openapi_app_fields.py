"""What the OpenAPI document says of app fields that depend on the provider type."""

from __future__ import annotations

from typing import Any

Schema = dict[str, Any]
SERVICE_ACCOUNT = ("serviceClient", "serviceClientEmail", "serviceKey")  # gmailService

SERVICE_DOCS = {
    "serviceClient": "gmailService: the service account's client id (the key file's client_id);"
    " taken from a JSON key file when absent",
    "serviceClientEmail": "gmailService: the service account's email, the assertion's issuer;"
    " taken from a JSON key file when absent",
    "serviceKey": "gmailService only: the service account's private key, PEM or the JSON key"
    " file Google hands out; encrypted at rest, write-only (read back as ******)",
    "clientId": "the app's client id (all types but gmailService; outlookService: the Entra"
    " app's application id)",
    "clientSecret": "the client secret (write-only; outlook, outlookService and oidc apps may"
    " give clientCertificate instead)",
    "authority": "outlook: common, organizations, consumers or a tenant id; outlookService:"
    " the tenant id (required: the directory whose mailboxes the app reads)",
    "cloud": "outlook and outlookService: Microsoft's cloud, which decides the sign-in,"
    " Graph and Exchange Online hosts (docs/microsoft-clouds.md)",
    "baseScopes": "the scope preset: imap, api or pubsub (gmail, gmailService), imap or api"
    " (outlook); outlookService: imap asks Exchange Online's .default (IMAP/POP/SMTP), anything"
    " else Microsoft Graph's .default",
    "clientCertificate": "outlook, outlookService, oidc: a PEM certificate for private_key_jwt"
    " client authentication, with clientCertificateKey",
    "clientCertificateKey": "the certificate's PEM private key (write-only, encrypted at rest)",
}
SERVICE_DOCS["tenant"] = SERVICE_DOCS["authority"]


def described(props: Schema) -> Schema:
    """The properties with SERVICE_DOCS' descriptions added where they are named."""
    return {
        name: {**value, "description": SERVICE_DOCS[name]} if name in SERVICE_DOCS else value
        for name, value in props.items()
    }
