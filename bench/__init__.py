"""Measurements of a running InferFlow; numbers go to docs/benchmarks.md, never into tests."""
