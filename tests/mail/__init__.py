"""Tests of service/mail: our IMAP and SMTP login clients."""
