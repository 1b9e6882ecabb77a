"""Operating the service: the CLI (the composition root), backup, key and password commands."""
