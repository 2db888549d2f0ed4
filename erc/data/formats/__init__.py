"""Readers for the benchmarks' distribution formats, each returning ``list[Dialogue]``."""
