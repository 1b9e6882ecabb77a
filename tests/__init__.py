"""Tests of tokenbroker, against a real Redis and a real OAuth2 provider."""
