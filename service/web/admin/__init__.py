"""The operator's settings pages under /admin/ (HTML, session cookie, CSRF)."""
