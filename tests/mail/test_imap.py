"""IMAP AUTHENTICATE XOAUTH2: which refusals mean IMAP is off for the mailbox."""

from __future__ import annotations

from service.mail.imap import refusal_kind
from service.mail.wire import Kind, scrub, xoauth2


def test_disabled_mailbox_words_are_imap_disabled() -> None:
    """Gmail's and Exchange Online's "IMAP is off" answers are imapDisabled, others tokenRefused."""
    disabled = (
        "[ALERT] Your account is not enabled for IMAP use. Please visit your Gmail settings "
        "page and enable your account for IMAP access. (Failure)",
        "[ALERT] IMAP access is disabled for your domain. Please contact your domain "
        "administrator for questions about this feature. (Failure)",
        "User is authenticated but not connected.",
    )
    for text in disabled:
        assert refusal_kind(text) == Kind.IMAP_DISABLED, text
    for text in ("[AUTHENTICATIONFAILED] Authentication failed.", "AUTHENTICATE failed."):
        assert refusal_kind(text) == Kind.TOKEN_REFUSED, text


def test_scrub_hides_token_and_sasl_string() -> None:
    """A server echoing the token or the SASL string shows neither."""
    sasl = xoauth2("u@example.test", "tok-123")
    shown = scrub(f"NO bad tok-123 and {sasl}", "tok-123", sasl)
    assert "tok-123" not in shown and sasl not in shown and shown.count("[hidden]") == 2
