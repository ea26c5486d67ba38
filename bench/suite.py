"""Runs the benchmark: capacity, the limit, every tool against one emulator, then the report."""

from __future__ import annotations

import json
import math
import platform
import subprocess
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

from bench import plot, report
from bench.capacity import measure
from bench.emulator import REPO, CallCount, EmulatorProcess, EmulatorSpec, emulator_process
from bench.limit import (
    ENTITIES,
    GENERATE,
    GET,
    LISTS,
    Minimum,
    fastest,
    ideal_schedule,
    minimum_calls,
)
from bench.measure import run_measured, tool_env
from bench.score import read_jsonl, score
from bench.tools import BASELINES, Tool, collector_tools

DEFAULT_RATES: dict[str, float] = {GENERATE: 20.0, GET: 20.0, ENTITIES: 20.0} | dict.fromkeys(
    LISTS.values(), 10.0
)
# Between two tools: the account's buckets refill (1 s) and the per-second counts of two
# tools never share a second.
GAP_SECONDS = 2.5
TOOL_TIMEOUT = 20 * 60.0
TOOL_NAMES = ("collector", *(tool.name for tool in BASELINES))


@dataclass(frozen=True)
class Options:
    """One bench run, as the flags asked for it."""

    render_only: bool  # measure nothing: rewrite results.md from results.json
    principals: int
    seed: int
    rates: Mapping[str, float]
    latency_median: float
    latency_sigma: float
    tools: Sequence[str]
    variants: Sequence[str]  # KEY=VALUE environments of extra, diagnostic collector rows
    capacity: bool
    sequential_subset: int
    runs_dir: Path  # raw outputs of every tool (git-ignored)
    results_dir: Path  # results.md, results.json, calls.png
    command: str


def run(options: Options) -> dict[str, Any]:
    """Measure, save to results.json, render results.md (and calls.png when peers ran)."""
    commit = _commit()  # before any tool starts: the code they import is this one
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = options.runs_dir / f"{stamp}-{options.principals}"
    workdir.mkdir(parents=True, exist_ok=True)
    tools = _tools(options)
    _say(f"bench: raw outputs in {workdir}")
    capacity = None
    if options.capacity:
        _say("bench: measuring the emulator's capacity (no rate limits, no job latency) ...")
        spec = EmulatorSpec(options.principals, options.seed, {}, "0")
        with emulator_process(spec, workdir / "capacity") as emulator:
            capacity = asdict(measure(emulator.endpoint, emulator.ground_truth()))
    latency = f"lognormal:{options.latency_median:g}:{options.latency_sigma:g}"
    spec = EmulatorSpec(options.principals, options.seed, dict(options.rates), latency)
    results: list[dict[str, Any]] = []
    series: dict[str, list[dict[str, Any]]] = {}
    with emulator_process(spec, workdir / "emulator") as emulator:
        truth = emulator.ground_truth()
        minimum = minimum_calls(truth)
        limit = fastest(minimum, options.rates, options.latency_median)
        ideal = ideal_schedule(
            minimum, options.rates, options.latency_median, options.latency_sigma
        )
        _say(
            f"bench: {options.principals} principals served at {emulator.endpoint}; "
            f"T_min {limit.t_min:.1f} s"
        )
        order = _principal_order(truth)
        for tool in tools:
            time.sleep(GAP_SECONDS)
            result, calls = _run_tool(
                tool, options.rates, emulator, truth, order, minimum, limit.t_min, workdir
            )
            results.append(result)
            series[tool.name] = calls
            _say(
                f"bench: {tool.name}: {result['wall']:.1f} s on {result['principals_run']} "
                f"principals, {result['completeness']['rows_lost']} rows lost"
            )
    ours = next((r for r in results if r["name"] == "collector"), None)
    for result in results:
        result["ours_faster_by"] = (
            result["full_time"] / ours["full_time"] if ours and ours["full_time"] else None
        )
        # The same per row delivered: fair to a tool that wrote less than the account holds.
        result["ours_faster_per_row"] = (
            ours["rows_per_second"] / result["rows_per_second"]
            if ours and result["rows_per_second"]
            else None
        )
    (workdir / "series.json").write_text(json.dumps(series), encoding="utf-8")
    data = {
        "key": _key(options),
        "command": options.command,
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": _machine(),
        "collector_commit": commit,
        "parameters": {
            "principals": options.principals,
            "seed": options.seed,
            "rates": dict(options.rates),
            "latency": {"median": options.latency_median, "sigma": options.latency_sigma},
            "sequential_subset": options.sequential_subset,
        },
        "capacity": capacity,
        "minimum": asdict(minimum),
        "limit": asdict(limit),
        "ideal": ideal,
        "tools": results,
    }
    report.save(options.results_dir, data)
    # The fastest peer that reported every principal: a script that gave up on most of them
    # ends soonest, which says nothing about how it uses the account's rate.
    baselines = [r for r in results if r["module"] is not None and r["full_time"]]
    complete = [r for r in baselines if r["efficiency"] is not None]
    if ours is not None and baselines:
        best = min(complete or baselines, key=lambda r: r["full_time"])
        plot.draw(
            options.results_dir / "calls.png",
            [(ours, series["collector"]), (best, series[best["name"]])],
            options.rates,
        )
    return data


def _tools(options: Options) -> list[Tool]:
    tools: list[Tool] = []
    if "collector" in options.tools:
        tools += collector_tools(options.rates, list(options.variants))
    for tool in BASELINES:
        if tool.name in options.tools:
            cap = options.sequential_subset if tool.name == "sequential" else tool.subset_cap
            tools.append(Tool(**{**asdict(tool), "subset_cap": cap}))
    return tools


def _key(options: Options) -> str:
    names = "compare" if set(options.tools) == set(TOOL_NAMES) else "+".join(options.tools)
    return f"{names}-{options.principals}"


def _principal_order(truth: Sequence[Mapping[str, Any]]) -> list[str]:
    """Principals in the truth's order (users, groups, roles, policies)."""
    seen: dict[str, None] = {}
    for record in truth:
        seen.setdefault(record["principal_arn"], None)
    return list(seen)


def _subset(order: list[str], cap: int) -> list[str] | None:
    """Every k-th principal, so that at most `cap` are left and each kind keeps its share."""
    if len(order) <= cap:
        return None
    step = math.ceil(len(order) / cap)
    return order[::step]


def _run_tool(
    tool: Tool,
    rates: Mapping[str, float],
    emulator: EmulatorProcess,
    truth: Sequence[Mapping[str, Any]],
    order: list[str],
    minimum: Minimum,
    t_min: float,
    workdir: Path,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    safe = tool.name.replace("[", "_").replace("]", "").replace("=", "-")
    output = workdir / f"{safe}.jsonl"
    subset = _subset(order, tool.subset_cap)
    arns_file = None
    if subset is not None:
        arns_file = workdir / f"{safe}.arns"
        arns_file.write_text("\n".join(subset) + "\n", encoding="utf-8")
    _say(f"bench: running {tool.name} on {len(subset or order)} principals ...")
    measured = run_measured(
        tool.command(emulator.endpoint, output, arns_file),
        env=tool_env(workdir, tool.env),
        stdout=workdir / f"{safe}.stdout",
        stderr=workdir / f"{safe}.stderr",
        timeout=TOOL_TIMEOUT,
    )
    calls = emulator.calls(measured.started, measured.finished)
    served: Counter[str] = Counter()
    refused: dict[str, Counter[str]] = {}
    for count in calls:
        if count.outcome == "served":
            served[count.operation] += count.calls
        else:
            refused.setdefault(count.outcome, Counter())[count.operation] += count.calls
    completeness = score(read_jsonl(output), truth, set(subset) if subset else None)
    rows = sum(
        1
        for record in read_jsonl(output)
        if record.get("record") in ("service", "entity", "principal")
    )
    run_count = len(subset) if subset else len(order)
    full_time = measured.wall * len(order) / run_count
    extra_pages = minimum.extra_service_pages if tool.reads_extra_pages and not subset else 0
    jobs = served[GENERATE]
    start = int(measured.started)
    result = {
        "name": tool.name,
        "label": tool.label,
        "module": tool.module,
        "principals_run": run_count,
        "principals_total": len(order),
        "subset": subset is not None,
        "wall": measured.wall,
        "full_time": full_time,
        "returncode": measured.returncode,
        "timed_out": measured.timed_out,
        "peak_rss": measured.peak_rss,
        "calls": dict(served),
        "throttled": dict(refused.get("Throttling", Counter())),
        "other_refusals": {
            code: sum(c.values()) for code, c in refused.items() if code != "Throttling"
        },
        "polls_per_job": (served[GET] - extra_pages) / jobs if jobs else None,
        "rows": rows,
        "rows_per_second": rows / measured.wall if measured.wall else 0.0,
        "completeness": asdict(completeness)
        | {
            "rows_lost": completeness.rows_lost,
            "exact": completeness.exact,
            "rows_expected": completeness.rows_expected,
        },
        # Only for a tool that reported every principal: one that gave up on some would
        # otherwise look efficient for doing less.
        "efficiency": t_min / full_time
        if full_time and completeness.principals_reported == completeness.principals_expected
        else None,
        "summary": tool.summary(output, workdir / f"{safe}.stdout"),
        "timeline": _timeline(calls, start, measured.finished, rates),
    }
    return result, [asdict(count) | {"t": count.second - start} for count in calls]


def _timeline(
    calls: Sequence[CallCount], start: int, finished: float, rates: Mapping[str, float]
) -> dict[str, Any]:
    """Where the time went: the Generate phase, its slow seconds, and the tail after it."""
    generate = Counter(
        {c.second: c.calls for c in calls if c.operation == GENERATE and c.outcome == "served"}
    )
    entities = Counter(
        {c.second: c.calls for c in calls if c.operation == ENTITIES and c.outcome == "served"}
    )
    gets = Counter(
        {c.second: c.calls for c in calls if c.operation == GET and c.outcome == "served"}
    )
    if not generate:
        return {}
    first, last = min(generate), max(generate)
    # Inner seconds only: the first and the last one are partial by nature.
    slow = [s for s in range(first + 1, last) if generate[s] < 0.9 * rates[GENERATE]]
    return {
        "first_generate": first - start,
        "last_generate": last - start,
        "generate_span": last + 1 - first,
        "tail": finished - (last + 1),
        "slow_generate_seconds": len(slow),
        "slow_generate_calls_short": sum(rates[GENERATE] - generate[s] for s in slow),
        "slow_seconds_with_entities_busy": sum(
            1 for s in slow if entities[s] >= 0.9 * rates[ENTITIES]
        ),
        # How long Get was the busy operation: each extra poll then costs 1/rate of sweep.
        "get_busy_seconds": sum(1 for calls in gets.values() if calls >= 0.9 * rates[GET]),
        "seconds": int(finished) + 1 - start,
    }


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


def _machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpus": psutil.cpu_count(),
        "cpu_model": model,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def _say(message: str) -> None:
    print(message, flush=True)
