"""The tools the bench runs: how to start each one and what it reads back from it."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.limit import ENTITIES, GENERATE, GET, LISTS
from bench.scenarios import AUDIT_ROLE, UNTHROTTLED_COLLECTOR_RATE
from bench.score import read_jsonl

COLLECTOR = Path(sys.executable).with_name("collector")
RUN_ID = "bench"  # the run id the shard processes of one org sweep share


@dataclass(frozen=True)
class Tool:
    """One tool: its name in flags and tables, and how it is run."""

    name: str
    label: str
    module: str | None  # a baseline script (`python -m ...`), or None for the collector
    subset_cap: int  # principals at most; more would take over ~10 minutes
    env: Mapping[str, str] = field(default_factory=dict)
    org: bool = False  # an organisation sweep (`--org`, default settings otherwise)
    shards: int = 0  # > 0: this many shard processes at once

    @property
    def baseline(self) -> bool:
        return self.module is not None

    def commands(self, endpoint: str, output: Path, arns: Path | None) -> list[list[str]]:
        """The argv of each process that runs it against `endpoint`, writing under `output`."""
        if self.module is not None:
            command = [sys.executable, "-m", self.module, "--endpoint-url", endpoint]
            command += ["--output", f"{output}.jsonl"]
            return [command + (["--arns", str(arns)] if arns is not None else [])]
        sweep = [str(COLLECTOR), "sweep", "--endpoint-url", endpoint, "--no-progress"]
        if not self.org:
            return [[*sweep, "--output", f"{output}.jsonl"]]
        sweep += ["--org", "--role-name", AUDIT_ROLE, "--run-id", RUN_ID]
        sweep += ["--output", f"{output}/{{account_id}}.jsonl"]
        sweep += ["--manifest", f"{output}/manifest-{{shard}}.json"]
        if not self.shards:
            return [sweep]
        return [[*sweep, "--shard", f"{index}/{self.shards}"] for index in range(self.shards)]

    def records(self, output: Path) -> Iterator[dict[str, Any]]:
        """Everything it wrote: its JSONL file, or every account's file of an org sweep."""
        if not self.org:
            yield from read_jsonl(output.with_name(output.name + ".jsonl"))
            return
        for path in sorted(output.glob("*.jsonl")):
            yield from read_jsonl(path)

    def summary(self, output: Path, stdout: Path) -> dict[str, Any]:
        """What the tool says about its own run: the collector's `run` line, a script's JSON."""
        if self.module is None:
            runs = [record for record in self.records(output) if record.get("record") == "run"]
            return runs[-1] if len(runs) == 1 else {"runs": len(runs)}
        lines = stdout.read_text(encoding="utf-8").splitlines() if stdout.exists() else []
        return json.loads(lines[-1]) if lines else {}


def collector_env(rates: Mapping[str, float]) -> dict[str, str]:
    """The collector's rate ceilings set to the account's rates, as a container would."""
    if not rates:
        return dict.fromkeys(
            (
                "COLLECTOR_RATES_GENERATE",
                "COLLECTOR_RATES_GET",
                "COLLECTOR_RATES_GET_WITH_ENTITIES",
                "COLLECTOR_RATES_LIST",
            ),
            f"{UNTHROTTLED_COLLECTOR_RATE:g}",
        )
    return {
        "COLLECTOR_RATES_GENERATE": f"{rates[GENERATE]:g}",
        "COLLECTOR_RATES_GET": f"{rates[GET]:g}",
        "COLLECTOR_RATES_GET_WITH_ENTITIES": f"{rates[ENTITIES]:g}",
        "COLLECTOR_RATES_LIST": f"{min(rates[op] for op in LISTS.values()):g}",
    }


# The cpu scenario's baseline: the same work in a plain aiobotocore loop.
PLAIN_LOOP = Tool(
    name="plain_loop",
    label="plain aiobotocore loop",
    module="bench.baselines.plain_loop",
    subset_cap=10**9,
)

BASELINES = (
    Tool(
        name="gather_adaptive",
        label="asyncio.gather + adaptive retries",
        module="bench.baselines.gather_adaptive",
        subset_cap=2000,
    ),
    Tool(
        name="aardvark",
        label="Aardvark updater strategy",
        module="bench.baselines.aardvark",
        subset_cap=2000,
    ),
    Tool(
        name="sequential",
        label="sequential AWS CLI loop",
        module="bench.baselines.sequential",
        subset_cap=50,
    ),
)


def collector_tools(rates: Mapping[str, float], variants: list[str]) -> list[Tool]:
    """The collector as a user runs it, plus one row per diagnostic `KEY=VALUE` variant."""
    base = collector_env(rates)
    tools = [Tool("collector", "**collector (ours)**", None, 10**9, env=base)]
    for variant in variants:
        key, _, value = variant.partition("=")
        short = key.removeprefix("COLLECTOR_").lower()
        tools.append(
            Tool(
                name=f"collector[{short}={value}]",
                label=f"collector, {short}={value} (diagnostic, not a default)",
                module=None,
                subset_cap=10**9,
                env=base | {key: value},
            )
        )
    return tools


def org_tools(rates: Mapping[str, float], shards: int) -> list[Tool]:
    """The org sweep by one process, and (with `shards`) by that many shard processes."""
    env = collector_env(rates)
    tools = [Tool("collector", "**collector --org, 1 process**", None, 10**9, env, org=True)]
    if shards:
        tools.append(
            Tool(
                f"collector[shards={shards}]",
                f"collector --org, {shards} shard processes",
                None,
                10**9,
                env,
                org=True,
                shards=shards,
            )
        )
    return tools
