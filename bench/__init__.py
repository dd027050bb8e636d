"""Benchmarks (not shipped): see bench/README.md."""
