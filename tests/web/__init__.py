"""Tests of the web process, through aiohttp's test client."""
