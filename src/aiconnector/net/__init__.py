"""Outbound HTTP under SSRF rules: the only way server code reaches URLs that callers name."""
