"""Openline benchmarks: ``make bench`` (all) or ``make bench BENCH_ARGS="consent_list"``."""
