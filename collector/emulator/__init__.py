"""The Access Advisor emulator: moto's IAM plus the three operations it lacks (dev, tests)."""

from collector.emulator.faults import Faults, LogNormal
from collector.emulator.organization import OrgAccount, OrgOptions, OrgUnit
from collector.emulator.orgserver import Organization, running_organization
from collector.emulator.server import Emulator, EmulatorOptions, running_emulator

__all__ = [
    "Emulator",
    "EmulatorOptions",
    "Faults",
    "LogNormal",
    "OrgAccount",
    "OrgOptions",
    "OrgUnit",
    "Organization",
    "running_emulator",
    "running_organization",
]
