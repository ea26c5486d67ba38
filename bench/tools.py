"""The tools the bench runs: how to start each one and what it reads back from it."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.limit import ENTITIES, GENERATE, GET, LISTS
from bench.score import read_jsonl

COLLECTOR = Path(sys.executable).with_name("collector")


@dataclass(frozen=True)
class Tool:
    """One tool: its name in flags and tables, and how it is run."""

    name: str
    label: str
    module: str | None  # a baseline script (`python -m ...`), or None for the collector
    subset_cap: int  # principals at most; more would take over ~10 minutes
    reads_extra_pages: bool  # follows Marker on GetServiceLastAccessedDetails
    env: Mapping[str, str] = field(default_factory=dict)

    def command(self, endpoint: str, output: Path, arns: Path | None) -> list[str]:
        """The argv that runs it against `endpoint`, writing `output`."""
        if self.module is None:
            return [
                str(COLLECTOR),
                "sweep",
                "--endpoint-url",
                endpoint,
                "--output",
                str(output),
                "--no-progress",
            ]
        command = [sys.executable, "-m", self.module, "--endpoint-url", endpoint]
        command += ["--output", str(output)]
        return command + (["--arns", str(arns)] if arns is not None else [])

    def summary(self, output: Path, stdout: Path) -> dict[str, Any]:
        """What the tool says about its own run: the collector's `run` line, a script's JSON."""
        if self.module is None:
            runs = [record for record in read_jsonl(output) if record.get("record") == "run"]
            return runs[-1] if runs else {}
        lines = stdout.read_text(encoding="utf-8").splitlines() if stdout.exists() else []
        return json.loads(lines[-1]) if lines else {}


def collector_env(rates: Mapping[str, float]) -> dict[str, str]:
    """The collector's rate ceilings set to the account's rates, as a container would."""
    return {
        "COLLECTOR_RATES_GENERATE": f"{rates[GENERATE]:g}",
        "COLLECTOR_RATES_GET": f"{rates[GET]:g}",
        "COLLECTOR_RATES_GET_WITH_ENTITIES": f"{rates[ENTITIES]:g}",
        "COLLECTOR_RATES_LIST": f"{min(rates[op] for op in LISTS.values()):g}",
    }


BASELINES = (
    Tool(
        name="gather_adaptive",
        label="asyncio.gather + adaptive retries",
        module="bench.baselines.gather_adaptive",
        subset_cap=2000,
        reads_extra_pages=False,
    ),
    Tool(
        name="aardvark",
        label="Aardvark updater strategy",
        module="bench.baselines.aardvark",
        subset_cap=2000,
        reads_extra_pages=False,
    ),
    Tool(
        name="sequential",
        label="sequential AWS CLI loop",
        module="bench.baselines.sequential",
        subset_cap=50,
        reads_extra_pages=False,
    ),
)


def collector_tools(rates: Mapping[str, float], variants: list[str]) -> list[Tool]:
    """The collector as a user runs it, plus one row per diagnostic `KEY=VALUE` variant."""
    base = collector_env(rates)
    tools = [
        Tool(
            name="collector",
            label="**collector (ours)**",
            module=None,
            subset_cap=10**9,
            reads_extra_pages=True,
            env=base,
        )
    ]
    for variant in variants:
        key, _, value = variant.partition("=")
        short = key.removeprefix("COLLECTOR_").lower()
        tools.append(
            Tool(
                name=f"collector[{short}={value}]",
                label=f"collector, {short}={value} (diagnostic, not a default)",
                module=None,
                subset_cap=10**9,
                reads_extra_pages=True,
                env=base | {key: value},
            )
        )
    return tools
