"""Sieve extensions: every module here has `register(registry)` and is loaded by name."""
