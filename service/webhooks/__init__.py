"""Webhook events: payloads, the outbox and deliveries, signing, secrets, headers."""
