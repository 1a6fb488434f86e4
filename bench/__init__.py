"""Benchmarks against peers, run by ``make bench``; each writes its table to ``bench/results/``."""
