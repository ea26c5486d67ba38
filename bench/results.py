"""The bench's typed results: what one run measured, saved to and read back from results.json."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from bench.capacity import Capacity
from bench.limit import Limit, Minimum
from bench.score import Completeness


@dataclass(frozen=True)
class Machine:
    cpus: int
    cpu_model: str
    memory_gb: float
    system: str
    python: str
    load: tuple[float, float, float]  # 1, 5 and 15 min load averages when the run began


@dataclass(frozen=True)
class Parameters:
    """The account(s) and the limits they were served with."""

    principals: int  # per account
    accounts: int  # 1, or the organisation's accounts
    seed: int
    rates: Mapping[str, float]  # per account; empty: unthrottled
    latency: str  # `collector emulate --latency`
    faults: tuple[str, ...]  # the other `collector emulate` flags


@dataclass(frozen=True)
class Timeline:
    """Where the time went: the Generate phase, its slow seconds, and the tail after it."""

    first_generate: int  # second of the run
    generate_span: int
    tail: float  # seconds after the last Generate
    slow_generate_seconds: int  # inner seconds below 90% of the Generate rate
    seconds: int


@dataclass(frozen=True)
class ToolResult:
    """One tool's run (or a group of processes run as one, e.g. shards) and what it delivered."""

    name: str
    label: str
    baseline: bool  # a peer's script, not the collector
    processes: int
    principals_run: int
    principals_total: int
    subset: bool
    wall: float
    full_time: float  # wall, extrapolated to every principal for a subset run
    returncode: int
    timed_out: bool
    peak_rss: int  # bytes, the largest of its processes
    cpu: float  # seconds, user + system, all its processes
    calls: Mapping[str, int]  # served, per operation
    throttled: Mapping[str, int]
    other_refusals: Mapping[str, int]  # per error code
    marker_pages: Mapping[str, int]  # per operation: served calls that followed a Marker
    completeness: Completeness
    rows: int
    efficiency: float | None  # T_min / full time, when every principal was reported
    timeline: Timeline | None
    summary: Mapping[str, Any] = field(default_factory=dict)
    emulator_cpu: float | None = None  # seconds the emulator's process used during the run
    rounds_cpu_per_call_ms: tuple[float, ...] = ()  # each round's, when the tool ran in rounds

    @property
    def calls_total(self) -> int:
        """Every call the emulator answered, throttled ones included: each costs CPU."""
        return (
            sum(self.calls.values())
            + sum(self.throttled.values())
            + sum(self.other_refusals.values())
        )

    @property
    def cpu_per_call_ms(self) -> float | None:
        return 1000 * self.cpu / self.calls_total if self.calls_total else None

    @property
    def polls_per_job(self) -> float | None:
        """Get calls that were polls (not later service pages) per generated job."""
        jobs = self.calls.get("GenerateServiceLastAccessedDetails", 0)
        gets = self.calls.get("GetServiceLastAccessedDetails", 0)
        return (gets - self.service_pages) / jobs if jobs else None

    @property
    def service_pages(self) -> int:
        """Get calls that read a later page of services, not a poll."""
        return self.marker_pages.get("GetServiceLastAccessedDetails", 0)

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.wall if self.wall else 0.0


@dataclass(frozen=True)
class Run:
    """One scenario's measurement: the limit it is judged against and every tool's result."""

    key: str
    scenario: str
    title: str
    command: str
    date: str
    machine: Machine
    collector_commit: str
    parameters: Parameters
    capacity: Capacity | None
    minimum: Minimum
    limit: Limit
    ideal: float | None  # mean finish of a simulated ideal scheduler (see limit.ideal_schedule)
    tools: tuple[ToolResult, ...]

    def tool(self, name: str) -> ToolResult | None:
        return next((tool for tool in self.tools if tool.name == name), None)


RUNS = TypeAdapter(dict[str, Run])


def load(directory: Path) -> dict[str, Run]:
    """Every run kept in results.json (none if there is none yet, or it predates these types)."""
    path = directory / "results.json"
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    if data.get("version") != 2:
        return {}
    return RUNS.validate_python(data["runs"])


def save(directory: Path, runs: Mapping[str, Run]) -> None:
    path = directory / "results.json"
    data = {"version": 2, "runs": {key: asdict(run) for key, run in runs.items()}}
    path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
