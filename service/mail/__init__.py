"""Our own asyncio IMAP and SMTP clients, just enough to log in with XOAUTH2 and say how it went."""
