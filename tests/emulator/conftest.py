"""Fixtures for the emulator tests: dummy AWS settings and emulators started on demand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import Emulator, EmulatorOptions, running_emulator
from tests.emulator.clients import REGION, EmulatorFactory


@pytest.fixture(autouse=True)
def dummy_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No real AWS credentials or config leak in; dummy keys are all the emulator needs."""
    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield


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
