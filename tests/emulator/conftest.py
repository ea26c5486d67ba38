"""Emulator test fixtures: emulators started on demand (tests/conftest.py cleans the env)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest

from collector.emulator import Emulator, EmulatorOptions, running_emulator
from tests.support.emulator_clients import EmulatorFactory


@pytest.fixture
def emulator_with() -> EmulatorFactory:
    """Start an emulator with the given EmulatorOptions fields (a context manager)."""

    def start(**fields: Any) -> AbstractContextManager[Emulator]:
        fields.setdefault("principals", 40)
        fields.setdefault("seed", 11)
        return running_emulator(EmulatorOptions(**fields))

    return start


@pytest.fixture
def emulator(emulator_with: EmulatorFactory) -> Iterator[Emulator]:
    """A well-behaved emulator of 40 principals."""
    with emulator_with() as emu:
        yield emu
