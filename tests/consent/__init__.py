"""The consent flow against the real provider: connect, hosted links, id_tokens, delete."""
