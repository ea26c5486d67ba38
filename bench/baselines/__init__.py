"""Peers' strategies as small scripts, each run as its own process against the emulator."""
