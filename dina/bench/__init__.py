"""Micro-benchmarks that compare dina's components with reference implementations."""
