"""Benchmarks: every process for real, each figure beside a baseline measured in the same run."""
