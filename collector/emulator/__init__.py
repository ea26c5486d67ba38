"""The Access Advisor emulator: moto's IAM plus the three operations it lacks (dev, tests)."""

from collector.emulator.faults import Faults, LogNormal
from collector.emulator.server import Emulator, EmulatorOptions, running_emulator

__all__ = ["Emulator", "EmulatorOptions", "Faults", "LogNormal", "running_emulator"]
