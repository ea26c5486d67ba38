"""Runs the benchmark: per scenario one emulator, the limit, every tool against it, the report."""

from __future__ import annotations

import math
import os
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import plot, report, results
from bench.capacity import measure
from bench.emulator import REPO, CallCount, EmulatorProcess, EmulatorSpec, emulator_process
from bench.limit import (
    GENERATE,
    Limit,
    account_minima,
    fastest,
    forced,
    ideal_schedule,
    minimum_calls,
    org_limit,
)
from bench.measure import run_side_by_side, tool_env
from bench.results import Machine, Parameters, Run, Timeline, ToolResult
from bench.scenarios import DEFAULT_RATES, UNTHROTTLED_COLLECTOR_RATE, Scenario
from bench.score import score
from bench.tools import BASELINES, PLAIN_LOOP, Tool, collector_tools, org_tools

# Between two tools: the account's buckets refill (1 s) and the per-second counts of two
# tools never share a second.
GAP_SECONDS = 2.5
TOOL_TIMEOUT = 20 * 60.0
TOOL_NAMES = ("collector", *(tool.name for tool in BASELINES))
MARKER = "+Marker"  # the emulator's count of served calls that followed a Marker


@dataclass(frozen=True)
class Options:
    """One bench run, as the flags asked for it."""

    scenarios: Sequence[Scenario]
    principals: int  # single-account scenarios
    org_principals: int  # per account of the organisation scenarios
    seed: int
    tools: Sequence[str]  # collector and peers, for scenarios with peers
    variants: Sequence[str]  # KEY=VALUE environments of extra, diagnostic collector rows
    capacity: bool
    sequential_subset: int
    runs_dir: Path  # raw outputs of every tool (git-ignored)
    results_dir: Path  # results.md, results.json, calls.png
    command: str


def run(options: Options) -> list[Run]:
    """Measure every scenario asked for, keep them in results.json, render results.md."""
    commit = _commit()  # before any tool starts: the code they import is this one
    done = []
    for scenario in options.scenarios:
        measured = _scenario(options, scenario, commit)
        kept = results.load(options.results_dir)
        kept[measured.key] = measured
        results.save(options.results_dir, kept)
        report.write(options.results_dir, kept)
        done.append(measured)
    return done


def _scenario(options: Options, scenario: Scenario, commit: str) -> Run:
    org = scenario.accounts > 0
    principals = scenario.principals or (options.org_principals if org else options.principals)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = options.runs_dir / f"{stamp}-{scenario.name}-{principals}"
    workdir.mkdir(parents=True, exist_ok=True)
    _say(f"bench: {scenario.name}: raw outputs in {workdir}")
    load = os.getloadavg()
    capacity = None
    if options.capacity and scenario.peers:
        _say("bench: measuring the emulator's capacity (no rate limits, no job latency) ...")
        spec = EmulatorSpec(principals, options.seed, {}, "0")
        with emulator_process(spec, workdir / "capacity") as emulator:
            capacity = measure(emulator.endpoint, emulator.ground_truth())
    extra = scenario.faults + (("--accounts", str(scenario.accounts)) if org else ())
    spec = EmulatorSpec(principals, options.seed, dict(scenario.rates), scenario.latency, extra)
    median = _median(scenario.latency)
    tools = _tools(options, scenario)
    measured: list[ToolResult] = []
    series: dict[str, list[dict[str, Any]]] = {}
    with emulator_process(spec, workdir / "emulator") as emulator:
        truth = emulator.ground_truth()
        rates = dict(scenario.rates) or _unthrottled()
        if org:
            minima = account_minima(truth)
            minimum, limit = org_limit(minima, rates, median)
        else:
            minima = [minimum_calls(truth)]
            minimum = minima[0]
            limit = fastest(minimum, rates, median)
        ideal = (
            ideal_schedule(minima, rates, median, 0.5)
            if scenario.latency.startswith("lognormal")
            else None
        )
        _say(f"bench: {scenario.name}: served at {emulator.endpoint}; T_min {limit.t_min:.1f} s")
        order = list(dict.fromkeys(record["principal_arn"] for record in truth))
        rounds: dict[str, list[tuple[ToolResult, list[dict[str, Any]]]]] = {}
        for round_ in range(scenario.rounds):
            for tool in tools:  # in turn: the machine's drift reaches every tool alike
                time.sleep(GAP_SECONDS)
                suffix = f"-round{round_}" if scenario.rounds > 1 else ""
                result, calls = _run_tool(tool, rates, emulator, truth, order, workdir, suffix)
                rounds.setdefault(tool.name, []).append((result, calls))
                _say(
                    f"bench: {tool.name}{suffix}: {result.wall:.1f} s, "
                    f"{result.completeness.rows_lost} rows lost, CPU/call "
                    f"{result.cpu_per_call_ms or 0:.2f} ms"
                )
        for tool in tools:
            result, calls = _median_round(rounds[tool.name])
            measured.append(result)
            series[tool.name] = calls
    ours = next((r for r in measured if not r.baseline), None)
    if ours is not None and not org and scenario.faults and scenario.throttled:
        # Short pages and random refusals are forced on any sweep: count the ones served.
        minimum = forced(minimum, ours.marker_pages, _share(scenario.faults))
        limit = fastest(minimum, rates, median)
    measured = [_judged(r, limit if scenario.throttled else None) for r in measured]
    run = Run(
        key=f"{scenario.name}-{principals}",
        scenario=scenario.name,
        title=scenario.title,
        command=options.command,
        date=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        machine=_machine(load),
        collector_commit=commit,
        parameters=Parameters(
            principals=principals,
            accounts=max(1, scenario.accounts),
            seed=options.seed,
            rates=dict(scenario.rates),
            latency=scenario.latency,
            faults=scenario.faults,
        ),
        capacity=capacity,
        minimum=minimum,
        limit=limit,
        ideal=ideal,
        tools=tuple(measured),
    )
    if scenario.peers:
        _plot(options.results_dir / "calls.png", run, series, rates)
    return run


def _median_round(
    rounds: Sequence[tuple[ToolResult, list[dict[str, Any]]]],
) -> tuple[ToolResult, list[dict[str, Any]]]:
    """The round with the median CPU per call, carrying every round's figure."""
    if len(rounds) == 1:
        return rounds[0]
    ordered = sorted(rounds, key=lambda pair: pair[0].cpu_per_call_ms or 0.0)
    result, calls = ordered[len(ordered) // 2]
    each = tuple(round(r.cpu_per_call_ms or 0.0, 4) for r, _ in rounds)
    return replace(result, rounds_cpu_per_call_ms=each), calls


def _median(latency: str) -> float:
    """The median of a `--latency` value: fixed, lognormal:MEDIAN:SIGMA or uniform:LOW:HIGH."""
    kind, _, rest = latency.partition(":")
    if kind == "lognormal":
        return float(rest.split(":")[0])
    if kind == "uniform":
        low, high = (float(part) for part in rest.split(":"))
        return (low + high) / 2
    return float(latency)


def _share(faults: Sequence[str]) -> float:
    """The `--throttle-share` among emulator flags (0 without it)."""
    flags = list(faults)
    if "--throttle-share" in flags:
        return float(flags[flags.index("--throttle-share") + 1])
    return 0.0


def _unthrottled() -> dict[str, float]:
    """Rates that bound nothing, for a limit of an unthrottled emulator (its T_min is ~0)."""
    return dict.fromkeys(DEFAULT_RATES, UNTHROTTLED_COLLECTOR_RATE)


def _tools(options: Options, scenario: Scenario) -> list[Tool]:
    if scenario.accounts:
        return org_tools(scenario.rates, scenario.shards)
    tools = collector_tools(scenario.rates, list(options.variants))
    if scenario.plain_loop:
        tools.append(PLAIN_LOOP)
    if scenario.peers:
        for tool in BASELINES:
            if tool.name in options.tools:
                cap = options.sequential_subset if tool.name == "sequential" else tool.subset_cap
                tools.append(replace(tool, subset_cap=cap))
    if "collector" not in options.tools:
        tools = [tool for tool in tools if tool.baseline]
    return tools


def _subset(order: list[str], cap: int) -> list[str] | None:
    """Every k-th principal, so that at most `cap` are left and each kind keeps its share."""
    if len(order) <= cap:
        return None
    step = math.ceil(len(order) / cap)
    return order[::step]


def _judged(result: ToolResult, limit: Limit | None) -> ToolResult:
    """Its efficiency: only under rate limits (else T_min means nothing), and only for a tool
    that reported every principal (one that gave up on some would look efficient for less)."""
    c = result.completeness
    if limit is None or not result.full_time or c.principals_reported != c.principals_expected:
        return result
    return replace(result, efficiency=limit.t_min / result.full_time)


def _run_tool(
    tool: Tool,
    rates: Mapping[str, float],
    emulator: EmulatorProcess,
    truth: Sequence[Mapping[str, Any]],
    order: list[str],
    workdir: Path,
    suffix: str = "",
) -> tuple[ToolResult, list[dict[str, Any]]]:
    safe = tool.name.replace("[", "_").replace("]", "").replace("=", "-") + suffix
    output = workdir / safe
    subset = _subset(order, tool.subset_cap)
    arns_file = None
    if subset is not None:
        arns_file = workdir / f"{safe}.arns"
        arns_file.write_text("\n".join(subset) + "\n", encoding="utf-8")
    _say(f"bench: running {tool.name} on {len(subset or order)} principals ...")
    commands = tool.commands(emulator.endpoint, output, arns_file)
    serving = psutil.Process(emulator.process.pid)
    emulator_before = sum(serving.cpu_times()[:2])
    processes = run_side_by_side(
        commands,
        env=tool_env(workdir, tool.env),
        outputs=[
            (workdir / f"{safe}.{index}.stdout", workdir / f"{safe}.{index}.stderr")
            for index in range(len(commands))
        ],
        timeout=TOOL_TIMEOUT,
    )
    started = min(p.started for p in processes)
    finished = max(p.finished for p in processes)
    wall = max(p.wall for p in processes)
    calls = emulator.calls(started, finished)  # waits for the counts written after the run
    emulator_cpu = sum(serving.cpu_times()[:2]) - emulator_before
    served: Counter[str] = Counter()
    refused: dict[str, Counter[str]] = {}
    for count in calls:
        if count.outcome == "served":
            served[count.operation] += count.calls
        else:
            refused.setdefault(count.outcome, Counter())[count.operation] += count.calls
    pages = {op.removesuffix(MARKER): n for op, n in served.items() if op.endswith(MARKER)}
    served = Counter({op: n for op, n in served.items() if not op.endswith(MARKER)})
    records = list(tool.records(output))
    completeness = score(records, truth, set(subset) if subset else None)
    rows = sum(1 for r in records if r.get("record") in ("service", "entity", "principal"))
    run_count = len(subset) if subset else len(order)
    full_time = wall * len(order) / run_count
    result = ToolResult(
        name=tool.name,
        label=tool.label,
        baseline=tool.baseline,
        processes=len(processes),
        principals_run=run_count,
        principals_total=len(order),
        subset=subset is not None,
        wall=wall,
        full_time=full_time,
        returncode=max((p.returncode for p in processes), key=abs),
        timed_out=any(p.timed_out for p in processes),
        peak_rss=max(p.peak_rss for p in processes),
        cpu=sum(p.cpu for p in processes),
        calls=dict(served),
        throttled=dict(refused.get("Throttling", Counter())),
        other_refusals={
            code: sum(c.values()) for code, c in refused.items() if code != "Throttling"
        },
        marker_pages=pages,
        completeness=completeness,
        rows=rows,
        efficiency=None,  # judged once the scenario's limit is final
        timeline=_timeline(calls, int(started), finished, rates),
        summary=tool.summary(output, workdir / f"{safe}.0.stdout"),
        emulator_cpu=emulator_cpu,
    )
    start = int(started)
    return result, [
        {"t": c.second - start, "operation": c.operation, "outcome": c.outcome, "calls": c.calls}
        for c in calls
        if not c.operation.endswith(MARKER)
    ]


def _timeline(
    calls: Sequence[CallCount], start: int, finished: float, rates: Mapping[str, float]
) -> Timeline | None:
    """Where the time went: the Generate phase, its slow seconds, and the tail after it."""
    generate = Counter(
        {c.second: c.calls for c in calls if c.operation == GENERATE and c.outcome == "served"}
    )
    if not generate:
        return None
    first, last = min(generate), max(generate)
    # Inner seconds only: the first and the last one are partial by nature.
    slow = [s for s in range(first + 1, last) if generate[s] < 0.9 * rates[GENERATE]]
    return Timeline(
        first_generate=first - start,
        generate_span=last + 1 - first,
        tail=finished - (last + 1),
        slow_generate_seconds=len(slow),
        seconds=int(finished) + 1 - start,
    )


def _plot(
    path: Path, run: Run, series: Mapping[str, list[dict[str, Any]]], rates: Mapping[str, float]
) -> None:
    # The fastest peer that reported every principal: a script that gave up on most of them
    # ends soonest, which says nothing about how it uses the account's rate.
    ours = run.tool("collector")
    baselines = [r for r in run.tools if r.baseline and r.full_time]
    complete = [r for r in baselines if r.efficiency is not None]
    if ours is None or not baselines:
        return
    best = min(complete or baselines, key=lambda r: r.full_time)
    plot.draw(path, [(ours, series[ours.name]), (best, series[best.name])], rates)


def _commit() -> str:
    """The commit the collector ran from, marked when collector/ has uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "collector"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + (" with uncommitted changes under collector/" if dirty else "")


def _machine(load: tuple[float, float, float]) -> Machine:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return Machine(
        cpus=psutil.cpu_count() or 0,
        cpu_model=model,
        memory_gb=round(psutil.virtual_memory().total / 2**30, 1),
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
        load=load,
    )


def _say(message: str) -> None:
    print(message, flush=True)
