"""Benchmarks: the collector and its peers against one rate-limited emulator (`make bench`)."""
