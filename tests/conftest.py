"""Shared fixtures: a clean AWS environment with dummy keys; the `e2e` marker held to its meaning."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import COLLECTOR

# The node ids of this session's tests marked `e2e` (set once collection is done).
E2E_TESTS = pytest.StashKey[frozenset[str]]()


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


def runs_the_cli(argv: Sequence[Any]) -> bool:
    """Whether a command line starts the collector CLI: its script, `-m collector`, or runpy."""
    words = [os.fsdecode(word) for word in argv]
    return (
        COLLECTOR in words
        or any(a == "-m" and b == "collector" for a, b in pairwise(words))
        or any("run_module('collector'" in word for word in words)
    )


def refuse_unmarked_cli(config: pytest.Config, event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: a test (or its fixtures) not marked `e2e` may not start the CLI."""
    if event != "subprocess.Popen":  # every audited event passes here: the cheap test first
        return
    current = os.environ.get("PYTEST_CURRENT_TEST")
    if current is None:
        return
    argv = args[1] if isinstance(args[1], list | tuple) else [args[1]]
    test = current.rpartition(" (")[0]
    if runs_the_cli(argv) and test not in config.stash.get(E2E_TESTS, frozenset()):
        raise RuntimeError(f"{test} starts the collector CLI in a subprocess: mark it e2e")


def pytest_configure(config: pytest.Config) -> None:
    # Audit hooks cannot be removed: one per process, which is one per pytest session here.
    sys.addaudithook(partial(refuse_unmarked_cli, config))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    config.stash[E2E_TESTS] = frozenset(
        item.nodeid for item in items if item.get_closest_marker("e2e")
    )
