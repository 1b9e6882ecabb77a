"""Talking to OAuth2/OIDC providers: token calls, discovery, identity, JOSE."""
