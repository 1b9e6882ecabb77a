"""Encryption at rest: the cipher, where sealed values live, and online key rotation."""
