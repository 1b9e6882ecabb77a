"""The aiohttp web process: JSON API, token endpoint, health and OpenAPI."""
