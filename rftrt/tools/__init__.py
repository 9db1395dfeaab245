"""Benchmarks, inspection and reports."""
