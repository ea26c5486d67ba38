"""Shared fixtures: a clean AWS environment with dummy keys, and sweep helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def aws_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No real AWS credentials or config can leak in; dummy keys are enough for the emulator."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "COLLECTOR_")):
            monkeypatch.delenv(name)
    empty = tmp_path_factory.mktemp("aws-home")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(Path(empty) / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(Path(empty) / "credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    yield
