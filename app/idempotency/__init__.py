"""Idempotency-Key (SPEC §2): one request per key and API key; its answer replayed."""
