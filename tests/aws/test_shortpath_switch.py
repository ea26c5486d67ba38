"""The short path is a choice with a fallback: switched off, or failing to set up, the sweep goes
on through aiobotocore's own methods, and its start-up line says which path the calls take."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from collector.aws.clients import open_clients
from collector.aws.fastpath import REPORT_METHODS, ReportCall
from collector.aws.tuning import parse_timestamp
from collector.config.settings import Settings
from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines, sweep


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    faults = Faults(latency=0.1, short_page_max=7)
    with running_emulator(EmulatorOptions(principals=30, seed=8, faults=faults)) as emulator:
        yield emulator


def _on_short_path(iam: Any) -> list[str]:
    return [name for name in REPORT_METHODS.values() if isinstance(getattr(iam, name), ReportCall)]


async def test_the_default_puts_the_three_report_calls_on_the_short_path() -> None:
    """On by default: the three report methods are short-path calls, and the log says so."""
    settings = Settings(endpoint_url="http://127.0.0.1:9")
    assert settings.fast_report_calls is True
    with anyio.fail_after(30):
        async with open_clients(settings, credentials={"aws_access_key_id": "k",
                                                       "aws_secret_access_key": "s"}) as clients:  # fmt: skip
            assert sorted(_on_short_path(clients.iam)) == sorted(REPORT_METHODS.values())
            assert clients.report_calls == "short"


async def test_switched_off_the_iam_client_is_aiobotocores_own() -> None:
    """fast_report_calls=false: no short-path method and no tuning of the client's parts."""
    settings = Settings(endpoint_url="http://127.0.0.1:9", fast_report_calls=False)
    with anyio.fail_after(30):
        async with open_clients(settings, credentials={"aws_access_key_id": "k",
                                                       "aws_secret_access_key": "s"}) as clients:  # fmt: skip
            iam: Any = clients.iam
            assert _on_short_path(iam) == []
            assert "to_string" not in vars(iam._user_agent_creator)  # not memoized
            defaults = iam._endpoint._response_parser_factory._defaults
            assert defaults.get("timestamp_parser") is not parse_timestamp
            assert clients.report_calls == "aiobotocore"


class _ChangedParser:
    """botocore's QueryParser after an upgrade that changed its signature."""

    def __init__(self, **_: Any) -> None:
        raise TypeError("QueryParser.__init__() got an unexpected keyword 'timestamp_parser'")


async def test_a_short_path_that_cannot_be_set_up_warns_once_and_the_sweep_completes(
    emu: Emulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception while setting the short path up (here: a botocore parser whose signature
    changed) is one warning; the sweep goes on through aiobotocore's methods, complete."""
    monkeypatch.setattr("collector.aws.fastpath.QueryParser", _ChangedParser)
    settings = fast_settings(emu.endpoint, tmp_path / "out.jsonl")
    with structlog.testing.capture_logs() as logs:
        result = await sweep(settings)
    warnings = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [entry["event"] for entry in warnings] == ["collector.aws.short_path_unavailable"]
    assert "TypeError" in warnings[0]["error"] and "timestamp_parser" in warnings[0]["error"]
    (started,) = [entry for entry in logs if entry["event"] == "collector.sweep.started"]
    assert started["report_calls"] == "aiobotocore"
    assert result.status == "complete"
    assert_matches_truth(read_lines(result.path or ""), emu.ground_truth())


async def test_the_start_up_line_names_the_path(emu: Emulator, tmp_path: Path) -> None:
    """collector.sweep.started carries report_calls: short by default, aiobotocore when off."""
    seen = {}
    for enabled in (True, False):
        settings = replace(
            fast_settings(emu.endpoint, tmp_path / f"{enabled}.jsonl"), fast_report_calls=enabled
        )
        with structlog.testing.capture_logs() as logs:
            result = await sweep(settings)
        assert result.status == "complete"
        (started,) = [entry for entry in logs if entry["event"] == "collector.sweep.started"]
        seen[enabled] = started["report_calls"]
        assert not [entry for entry in logs if entry["log_level"] == "warning"]
    assert seen == {True: "short", False: "aiobotocore"}
