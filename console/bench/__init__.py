"""Benchmarks behind `tandem bench`: one module each, printing numbers."""
