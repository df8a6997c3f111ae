"""Benchmark commands: `python -m benchmarks.<name>` (see benchmarks/README.md)."""
