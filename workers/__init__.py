"""Long-running loops of tokenbroker (refresh and webhook workers)."""
