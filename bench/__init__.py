"""Benchmarks against the plain-Keras recipe (`python -m bench.recipe`)."""
