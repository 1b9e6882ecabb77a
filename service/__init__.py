"""tokenbroker: keeps OAuth2 access tokens fresh and hands them to programs over HTTP."""
