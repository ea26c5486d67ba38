"""results.json (every run, by kind) and results.md rendered from it: tables, limit, targets."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.limit import ENTITIES, GENERATE, GET, LISTS

Run = Mapping[str, Any]
Result = Mapping[str, Any]

SHORT = {GENERATE: "Generate", GET: "Get", ENTITIES: "GetWithEntities"}
HOW_TO_READ = (
    "How to read it: calls are counted by the emulator (served, per operation; List is the "
    "four List* operations together); throttled = calls answered `Throttling`. Polls per "
    "job = (Get calls - extra service pages read) / Generate calls. Rows = service, entity "
    "and principal lines written. Peak RSS = the tool process's own peak "
    "resident set (`VmHWM`, sampled every 20 ms; not `ru_maxrss`, which Linux carries over "
    "from the forking parent). "
    "Completeness is scored row by row against the emulator's ground truth: every "
    "(principal), (principal, service) and (principal, namespace, entity) row once, with "
    "the expected values. Efficiency = T_min / full-sweep time, for tools that reported "
    "every principal. Ours faster by: wall = the tool's full-sweep time / the collector's; "
    "per row = the collector's rows/s / the tool's (rows it actually delivered)."
)
MB = 2**20


def rerender(directory: Path) -> None:
    """Rewrite results.md from results.json, measuring nothing."""
    runs = json.loads((directory / "results.json").read_text(encoding="utf-8"))["runs"]
    (directory / "results.md").write_text(render(runs), encoding="utf-8")


def save(directory: Path, run: Run) -> None:
    """Keep this run next to the others (one per kind and size) and rewrite results.md."""
    path = directory / "results.json"
    runs: dict[str, Any] = {}
    if path.exists():
        runs = json.loads(path.read_text(encoding="utf-8")).get("runs", {})
    runs[run["key"]] = run
    path.write_text(json.dumps({"runs": runs}, indent=1) + "\n", encoding="utf-8")
    (directory / "results.md").write_text(render(runs), encoding="utf-8")


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ops(counts: Mapping[str, int]) -> str:
    lists = sum(counts.get(op, 0) for op in LISTS.values())
    return " / ".join(_n(counts.get(op, 0)) for op in (GENERATE, GET, ENTITIES)) + f" / {lists}"


def _throttled(result: Result) -> str:
    throttled = result["throttled"]
    total = sum(throttled.values())
    if not total:
        return "0"
    parts = ", ".join(f"{SHORT.get(op, op)} {_n(n)}" for op, n in sorted(throttled.items()))
    return f"{_n(total)} ({parts})"


def _completeness(result: Result) -> str:
    c = result["completeness"]
    if c["exact"]:
        return f"exact: all {_n(c['rows_expected'])} rows once, none lost"
    parts = [
        f"principals {_n(c['principals_reported'])}/{_n(c['principals_expected'])}",
        f"services {_n(c['services_found'])}/{_n(c['services_expected'])}"
        + (
            f" ({c['services_cut_short']} report{'s' if c['services_cut_short'] > 1 else ''} "
            "cut short)"
            if c["services_cut_short"]
            else ""
        ),
        f"entities {_n(c['entities_found'])}/{_n(c['entities_expected'])}",
    ]
    doubled = c["principals_duplicated"] + c["services_duplicated"] + c["entities_duplicated"]
    if doubled:
        parts.append(f"{_n(doubled)} rows doubled")
    if c["rows_differing"]:
        parts.append(f"{_n(c['rows_differing'])} rows differ")
    return f"**{_n(c['rows_lost'])} rows lost**: " + ", ".join(parts)


def _table(results: Sequence[Result]) -> list[str]:
    lines = [
        "| tool | principals run | wall (s) | full sweep (s) | calls: Generate / Get / "
        "GetWithEntities / List | throttled | polls per job | rows/s | peak RSS (MB) | "
        "completeness | efficiency | ours faster by: wall | ours faster by: per row |",
        "|---|--:|--:|--:|--:|---|--:|--:|--:|---|--:|--:|--:|",
    ]
    for r in results:
        full = f"{r['full_time']:.1f}" + (" (extrapolated)" if r["subset"] else "")
        polls = "" if r["polls_per_job"] is None else f"{r['polls_per_job']:.2f}"
        efficiency = (
            "n/a: principals missing" if r["efficiency"] is None else f"{r['efficiency']:.2f}"
        )
        faster = "" if r.get("ours_faster_by") is None else f"{r['ours_faster_by']:.2f}x"
        per_row = r.get("ours_faster_per_row")
        faster += f" | {per_row:.2f}x" if per_row is not None else " | "
        failed = "" if r["returncode"] == 0 else f" (exit {r['returncode']})"
        lines.append(
            f"| {r['label']}{failed} | {_n(r['principals_run'])} | {r['wall']:.1f} | {full} | "
            f"{_ops(r['calls'])} | {_throttled(r)} | {polls} | {_n(r['rows_per_second'])} | "
            f"{r['peak_rss'] / MB:.0f} | {_completeness(r)} | {efficiency} | {faster} |"
        )
    return lines


def _parameters(run: Run) -> list[str]:
    p = run["parameters"]
    m = run["minimum"]["principals"]
    rates = p["rates"]
    lists = min(rates[op] for op in LISTS.values())
    machine = run["machine"]
    return [
        f"- Command: `{run['command']}`; {run['date']}; collector at commit "
        f"{run.get('collector_commit', 'not recorded')}.",
        f"- Machine: {machine['cpus']} CPUs ({machine['cpu_model'] or 'unknown model'}), "
        f"{machine['memory_gb']} GB, {machine['system']}, Python {machine['python']}; the "
        "emulator, the tool and the bench each run in their own process on it.",
        f"- Account: {_n(p['principals'])} principals ({_n(m.get('user', 0))} users, "
        f"{_n(m.get('group', 0))} groups, {_n(m.get('role', 0))} roles, "
        f"{_n(m.get('policy', 0))} "
        f"customer-managed policies), seed {p['seed']}, served by `python -m bench.emulator_proc` "
        "(the emulator of `collector emulate`, plus per-second call counts).",
        f"- Rate limits (token bucket per operation, 1 s of burst, `Throttling` beyond): "
        f"Generate {rates[GENERATE]:g}/s, Get {rates[GET]:g}/s, GetWithEntities "
        f"{rates[ENTITIES]:g}/s, each List* {lists:g}/s. Job latency: lognormal, median "
        f"{p['latency']['median']:g} s, sigma {p['latency']['sigma']:g}.",
        f"- collector: `collector sweep --endpoint-url URL --output FILE --no-progress` with "
        f"`COLLECTOR_RATES_GENERATE={rates[GENERATE]:g}`, `_GET={rates[GET]:g}`, "
        f"`_GET_WITH_ENTITIES={rates[ENTITIES]:g}`, `_LIST={lists:g}` (its defaults), "
        "everything else default (entities of accessed namespaces of group and policy reports).",
    ]


def _capacity(run: Run) -> list[str]:
    capacity = run.get("capacity")
    if not capacity:
        return []
    rates = run["parameters"]["rates"]
    sweep_rate = rates[GENERATE] + rates[GET] + rates[ENTITIES]
    lines = [
        "### Emulator capacity",
        "",
        f"The same account in another emulator process with no rate limits and no job latency; "
        f"the client is this bench process (aiobotocore, {capacity['callers']} concurrent "
        f"callers, retries off, {capacity['seconds']:g} s per operation). werkzeug closes every "
        "connection, so each call is a new TCP connection, as a sweep's are.",
        "",
        "| operation | served calls/s | configured rate | headroom |",
        "|---|--:|--:|--:|",
    ]
    for op, value in capacity["calls_per_second"].items():
        rate = sweep_rate if op == "mix" else rates.get(op)
        name = "mix: Generate, Get, GetWithEntities in turn" if op == "mix" else op
        if op == "ListRoles":
            name = "ListRoles (all roles, MaxItems=1000)"
        configured = f"{rate:g}/s" + (" (sum of the three)" if op == "mix" else "")
        lines.append(f"| {name} | {value:,.0f} | {configured} | {value / rate:.0f}x |")
    lines += [
        "",
        f"Errors during the measurement: {capacity['errors']}. A sweep at the limits needs "
        f"{sweep_rate:g} calls/s of the three Access Advisor operations plus a handful of List "
        "calls, far below what the emulator serves while sharing the 2 CPUs with the client: "
        "the emulator is not what limits a sweep. (ListRoles is moto's own and slow with "
        "1,000-role pages, but a sweep makes one such call per 1,000 roles.)",
        "",
    ]
    return lines


def _limit(run: Run) -> list[str]:
    minimum = run["minimum"]
    limit = run["limit"]
    rates = run["parameters"]["rates"]
    lines = [
        "### The limit",
        "",
        "The fewest calls a correct sweep makes, counted from the ground truth (pages of "
        "1,000 items, the most IAM hands out):",
        "",
        "| operation | minimum calls | rate | max(0, calls - burst) / rate |",
        "|---|--:|--:|--:|",
    ]
    for op, calls in minimum["calls"].items():
        lines.append(f"| {op} | {_n(calls)} | {rates[op]:g}/s | {limit['seconds'][op]:.2f} s |")
    lines += [
        "",
        f"- Generate: one per principal ({_n(minimum['calls'][GENERATE])}). Get: one per job "
        f"({_n(minimum['jobs'])}) plus {_n(minimum['extra_service_pages'])} extra service "
        "pages. GetWithEntities: one page per 1,000 entities of each accessed namespace of a "
        f"group or policy report ({_n(minimum['entity_namespaces'])} pairs, "
        f"{_n(minimum['calls'][ENTITIES] - minimum['entity_namespaces'])} extra pages). List*: "
        "one page per 1,000 principals of the kind (moto hands out all users and all groups "
        "in one page, so a sweep of the emulator may make fewer).",
        "- **T_min = max over operations of max(0, C_op - B_op) / r_op, plus L**: each "
        "operation has its own bucket, so the operations overlap and the slowest sets the "
        "pace; B_op = r_op x 1 s is the burst a full bucket allows at the start; L = the median "
        "job latency, because the last job generated must still complete before its report "
        "can be read (its entity calls can be ordered away by reporting users and roles last).",
        f"- T_min = {limit['seconds'][limit['binding']]:.2f} s ({limit['binding']}) + "
        f"{limit['latency']:g} s = **{limit['t_min']:.1f} s**; efficiency = T_min / T_actual, "
        "T_actual being the tool's wall time from process start to exit.",
        f"- For context, not used in the efficiency: a simulated ideal scheduler (Generate "
        f"flat out, each job read by exactly one Get the instant it completes, latencies "
        f"drawn from the same distribution, 200 runs) finishes in {run['ideal']:.1f} s on "
        "average: with Get as fast as Generate and one Get per job, every second the Get "
        "bucket waits for a job to complete is lost for good, and the sweep waits for the "
        f"slowest of the last jobs, not the median one. No schedule reaches an efficiency "
        f"above about {limit['t_min'] / run['ideal']:.2f} here.",
        "",
    ]
    return lines


def _notes(run: Run) -> list[str]:
    results = run["tools"]
    lines: list[str] = []
    for r in results:
        if r["subset"]:
            step = round(r["principals_total"] / r["principals_run"])
            lines.append(
                f"- {r['label']} would take over 10 minutes on the whole account, so it ran on "
                f"a {r['principals_run']}-principal subset (every {step}th principal in the "
                "account's order, so users, groups, roles and policies keep their shares); its "
                f"full-sweep time is its wall time x {r['principals_total']:,} / "
                f"{r['principals_run']} (linear: it spends the same on every principal). Its "
                "calls, rows/s, peak RSS and completeness are the subset's."
            )
        summary = r.get("summary") or {}
        failed = summary.get("failed_principals")
        if failed:
            reasons = ", ".join(f"{n} {code}" for code, n in failed.items())
            lines.append(
                f"- {r['label']}: {sum(failed.values())} principals ended in an exception "
                f"({reasons}, after botocore's retries); they are missing from its output."
            )
        if summary.get("unfinished"):
            lines.append(f"- {r['label']}: gave up on {summary['unfinished']} unfinished jobs.")
    if any(r["module"] is not None for r in results):
        lines.append(
            "- What each peer does (the numbers they use, and what was followed) is in the "
            "docstring of its script in `bench/baselines/`."
        )
    return [*lines, ""] if lines else []


def _where_time_went(run: Run) -> list[str]:
    limit = run["limit"]
    rates = run["parameters"]["rates"]
    lines: list[str] = []
    for r in run["tools"]:
        t = r.get("timeline") or {}
        if r["module"] is not None or not t:
            continue
        ideal_span = limit["seconds"][GENERATE]
        lines.append(
            f"- {r['label']}: first Generate in second {t['first_generate']} of the run "
            f"(process start-up and discovery); the Generate phase spanned "
            f"{t['generate_span']} s for {_n(r['calls'].get(GENERATE, 0))} calls (T_min's share: "
            f"{ideal_span:.1f} s), with {t['slow_generate_seconds']} inner seconds below 90% of "
            f"{rates[GENERATE]:g}/s ({t['slow_generate_calls_short']:.0f} calls short), "
            f"GetWithEntities at its limit in {t['slow_seconds_with_entities_busy']} of them; "
            f"then {t['tail']:.1f} s after the last Generate (T_min allows {limit['latency']:g} "
            f"s). Get calls: {_n(r['calls'].get(GET, 0))} for {_n(r['calls'].get(GENERATE, 0))}"
            f" jobs."
        )
    if not lines:
        return []
    return ["### Where the collector's time goes", "", *lines, ""]


def _section(run: Run) -> list[str]:
    p = run["parameters"]
    kinds = ", ".join(r["label"].strip("*") for r in run["tools"])
    title = (
        f"{_n(p['principals'])} principals: collector and its peers"
        if run["key"].startswith("compare")
        else f"{_n(p['principals'])} principals: {kinds}"
    )
    lines = [f"## {title}", "", *_parameters(run), ""]
    lines += _capacity(run)
    lines += _limit(run)
    lines += ["### Results", "", *_table(run["tools"]), ""]
    lines += _notes(run)
    lines += _where_time_went(run)
    if run["key"].startswith("compare"):
        lines += [
            "### Calls per second",
            "",
            "![calls per second per operation, collector and the fastest peer](calls.png)",
            "",
            "Emulator-side counts, one point per second, for the collector and the fastest "
            "peer that reported every principal; dashed and dotted lines are the configured "
            "limits, red bars the calls answered `Throttling`.",
            "",
        ]
    return lines


def _find(runs: Mapping[str, Run], tool: str, principals: int | None = None) -> Result | None:
    """The newest result of `tool` (in a run of `principals`), comparison runs first."""
    newest = sorted(runs.values(), key=lambda run: run["date"], reverse=True)
    ordered = sorted(newest, key=lambda run: not run["key"].startswith("compare"))
    for run in ordered:
        if principals is not None and run["parameters"]["principals"] != principals:
            continue
        for result in run["tools"]:
            if result["name"] == tool:
                found: Result = result
                return found
    return None


def _verdict(ok: bool) -> str:
    return "**PASS**" if ok else "**MISS**"


def _targets(runs: Mapping[str, Run]) -> list[str]:
    compare = next(
        (run for run in runs.values() if run["key"] == "compare-1000"),
        next((run for run in runs.values() if run["key"].startswith("compare")), None),
    )
    lines = ["## Targets", "", "| target | measured | verdict |", "|---|---|---|"]
    notes: list[str] = []
    if compare is not None:
        results = {r["name"]: r for r in compare["tools"]}
        ours = results.get("collector")
        n = compare["parameters"]["principals"]
        t_min = compare["limit"]["t_min"]
        if ours is not None:
            eff = ours["efficiency"]
            lines.append(
                f"| efficiency >= 0.9 at {_n(n)} principals | {eff:.2f} (T_min {t_min:.1f} s / "
                f"{ours['wall']:.1f} s) | {_verdict(eff >= 0.9)} |"
            )
            if eff < 0.9:
                notes += _efficiency_miss(compare, ours)
            polls = ours["polls_per_job"]
            lines.append(f"| polls per job <= 1.2 | {polls:.3f} | {_verdict(polls <= 1.2)} |")
            for name, goal, text in (
                ("aardvark", 2.0, ">= 2x faster than the Aardvark strategy"),
                ("sequential", 20.0, ">= 20x faster than the sequential loop"),
                ("gather_adaptive", 1.0, "faster than asyncio.gather + adaptive retries"),
            ):
                peer = results.get(name)
                if peer is None:
                    continue
                ratio = peer["full_time"] / ours["full_time"]
                ok = ratio > goal if goal == 1.0 else ratio >= goal
                measured = f"{ratio:.2f}x ({peer['full_time']:.1f} s vs {ours['full_time']:.1f} s)"
                verdict = _verdict(ok)
                if not ok and peer["efficiency"] is None:
                    # It ended early by giving up on principals: judge it per row delivered too.
                    per_row = peer["ours_faster_per_row"]
                    per_row_ok = per_row > goal if goal == 1.0 else per_row >= goal
                    measured += (
                        f" wall; per row delivered {per_row:.2f}x "
                        f"({_n(ours['rows_per_second'])} vs {_n(peer['rows_per_second'])} rows/s)"
                    )
                    verdict = f"{_verdict(ok)} on wall time; {_verdict(per_row_ok)} per row"
                    notes += _gave_up_note(peer, ours)
                lines.append(f"| {text} | {measured} | {verdict} |")
                if not ok and name == "aardvark":
                    notes += _aardvark_miss(compare, ours, peer, goal)
            c = ours["completeness"]
            lines.append(
                f"| zero rows lost under the default throttling ({_n(n)} principals) | "
                f"{_n(c['rows_lost'])} lost, {'exact' if c['exact'] else 'not exact'} "
                f"({_n(c['rows_expected'])} rows expected), {_n(sum(ours['throttled'].values()))} "
                f"throttled calls | {_verdict(c['exact'])} |"
            )
    big = _find(runs, "collector", 10000)
    small = _find(runs, "collector", 1000)
    if big is not None:
        rss = big["peak_rss"] / MB
        lines.append(
            f"| peak RSS <= 150 MB at 10,000 principals | {rss:.0f} MB | {_verdict(rss <= 150)} |"
        )
        if small is not None:
            ratio = big["peak_rss"] / small["peak_rss"]
            lines.append(
                f"| peak RSS at 10,000 <= 1.3x the peak at 1,000 | {ratio:.2f}x ({rss:.0f} MB vs "
                f"{small['peak_rss'] / MB:.0f} MB) | {_verdict(ratio <= 1.3)} |"
            )
        c = big["completeness"]
        lines.append(
            f"| zero rows lost at 10,000 principals | {_n(c['rows_lost'])} lost "
            f"({_n(c['rows_expected'])} expected), {_n(sum(big['throttled'].values()))} "
            f"throttled calls | {_verdict(c['exact'])} |"
        )
    else:
        lines.append(
            "| peak RSS <= 150 MB at 10,000 principals | not measured yet: run "
            "`.venv/bin/python -m bench --principals 10000 --only collector` | - |"
        )
    return [*lines, "", *notes]


def _efficiency_miss(run: Run, ours: Result) -> list[str]:
    t_min = run["limit"]["t_min"]
    needed = t_min / 0.9
    t = ours.get("timeline") or {}
    lines = [
        f"**Efficiency: MISS by {0.9 - ours['efficiency']:.2f}** ({ours['efficiency']:.2f}): "
        f"0.9 needs a sweep within {needed:.1f} s; this one took {ours['wall']:.1f} s, "
        f"{ours['wall'] - needed:.1f} s over.",
        "",
    ]
    if not t:
        return lines
    ideal = run["ideal"]
    lines.append(
        f"- In context: the simulated ideal schedule (see The limit) finishes in {ideal:.1f} s, "
        f"an efficiency of {t_min / ideal:.2f} at best; this sweep is {ours['wall'] - ideal:.1f} "
        "s behind it."
    )
    rates = run["parameters"]["rates"]
    extra_polls = ours["calls"].get(GET, 0) - ours["calls"].get(GENERATE, 0)
    stalled = t["slow_generate_seconds"] >= 3 and t["slow_seconds_with_entities_busy"] >= 2
    lines.append(
        f"- Where the {ours['wall'] - t_min:.1f} s above T_min went: "
        f"{t['first_generate']} s before the first Generate (start-up, credentials, the first "
        f"List page); a Generate phase {t['generate_span'] - run['limit']['seconds'][GENERATE]:.1f}"
        f" s longer than T_min's share, with {t['slow_generate_seconds']} inner seconds below "
        f"90% of the rate ({t['slow_generate_calls_short']:.0f} calls short); "
        f"{t['tail']:.1f} s after the last Generate where T_min allows "
        f"{run['limit']['latency']:g} s, in which the Get bucket works off its backlog."
    )
    if "get_busy_seconds" in t:
        lines.append(
            f"- Get ran at 90% of its rate or more in {t['get_busy_seconds']} of the "
            f"{t['seconds']} seconds: it was the busy bucket, so each Get beyond one per job "
            f"cost {1 / rates[GET]:.2f} s of sweep; there were {_n(extra_polls)} of them "
            f"({extra_polls / rates[GET]:.1f} s), although polls per job "
            f"({ours['polls_per_job']:.2f}) meet their own target."
        )
    if stalled:
        lines.append(
            f"- Why the Generate phase stalled: GetWithEntities sat at its limit in "
            f"{t['slow_seconds_with_entities_busy']} of those {t['slow_generate_seconds']} "
            "seconds. The stages are chained by bounded streams; the fetch stage (8 workers, "
            "its input stream holding `fetch_workers` completed jobs) reads entities at "
            f"{rates[ENTITIES]:g}/s. Groups and policies carry every entity call, and they "
            "come early: discovery's first page to arrive fills the principal buffer (here "
            "the groups) and then the four kinds interleave, so the fewer groups and policies "
            "are all reported in the first part of the sweep, faster than that. The fetch "
            "stage backs up, the poll workers block handing completed jobs on, the "
            "unbuffered job stream stops taking new jobs, and Generate - the operation that "
            "sets T_min - idles while its tokens go unused; later GetWithEntities idles with "
            "nothing to read. The entity calls need only "
            f"{run['limit']['seconds'][ENTITIES]:.0f} s of the {t_min:.0f} s: they never "
            "needed to slow anything."
        )
        lines.extend(
            f"- Evidence: {variant['label']} ran the same sweep in {variant['wall']:.1f} s "
            f"(efficiency {variant['efficiency']:.2f}) with "
            f"{(variant.get('timeline') or {}).get('slow_generate_seconds', '?')} inner "
            "seconds of Generate below 90% of its rate."
            for variant in run["tools"]
            if variant["name"].startswith("collector[")
        )
    closing = (
        [
            "never let the entity backlog stop generation: buffer completed jobs up to "
            "`max_jobs_in_flight` (one page of services each) or otherwise decouple the fetch "
            "stage's input from the poll workers"
        ]
        if stalled
        else []
    )
    closing += [
        "fewer Gets beyond one per job while the Get bucket is busy: with Get limited like "
        "Generate no poll is free once Get is the busy bucket, early ones on a momentarily "
        "idle token included (they push the next due poll back)",
        "a bucket burst matching the account's (the collector's buckets hold 1 token, so the "
        f"{rates[GENERATE]:g} calls a full account bucket allows at once are spread over the "
        "first second)",
        "a faster start (the process start-up and imports count: T_actual is wall time)",
    ]
    lines += [
        "- What would close it (collector side, for the lead): " + "; ".join(closing) + ".",
        "",
    ]
    return lines


def _gave_up_note(peer: Result, ours: Result) -> list[str]:
    c = peer["completeness"]
    failed = (peer.get("summary") or {}).get("failed_principals") or {}
    reasons = ", ".join(f"{n} {code}" for code, n in failed.items()) or "errors"
    return [
        f"**{peer['label']}: faster on the clock only because it gave up.** It ended after "
        f"{peer['wall']:.1f} s with {_n(c['principals_expected'] - c['principals_reported'])} "
        f"of {_n(c['principals_expected'])} principals missing ({reasons} once botocore's "
        f"attempts ran out) and {_n(c['rows_lost'])} of {_n(c['rows_expected'])} rows lost; the "
        f"collector delivered all of them in {ours['wall']:.1f} s. Per row delivered the "
        f"collector is {peer['ours_faster_per_row']:.2f}x faster. Its wall time is not a time "
        "to the same result: that script has no way to reach it short of being rerun on what "
        "failed, against the same buckets.",
        "",
    ]


def _aardvark_miss(run: Run, ours: Result, peer: Result, goal: float) -> list[str]:
    seconds = run["limit"]["seconds"]
    floor = seconds[GENERATE] + seconds[GET]
    needed = peer["full_time"] / goal
    return [
        f"**Aardvark: MISS** ({peer['full_time'] / ours['full_time']:.2f}x, "
        f"{goal - peer['full_time'] / ours['full_time']:.2f} short of {goal:g}x). Aardvark "
        "generates every job before it reads any, so its two rate-bound phases add up instead "
        f"of overlapping: its floor is {seconds[GENERATE]:.1f} s + {seconds[GET]:.1f} s = "
        f"{floor:.1f} s, and it measured {peer['full_time']:.1f} s. {goal:g}x needs a sweep "
        f"within {needed:.1f} s, while T_min - the floor of any correct sweep, entities "
        f"included - is {run['limit']['t_min']:.1f} s"
        + (
            ": no tool can reach 2x here; the target would need Aardvark to lose time to "
            "throttling, which its 1 s backoff and botocore's retries mostly avoid."
            if needed < run["limit"]["t_min"]
            else f": reachable only at an efficiency of {run['limit']['t_min'] / needed:.2f}."
        ),
        "",
    ]


def render(runs: Mapping[str, Run]) -> str:
    """The whole results.md."""
    ordered = sorted(
        runs.values(),
        key=lambda run: (not run["key"].startswith("compare"), run["parameters"]["principals"]),
    )
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`.venv/bin/python -m bench`); the scale run by "
        "`.venv/bin/python -m bench --principals 10000 --only collector`. Each command "
        "rewrites its own section (kept in `bench/results.json`) and leaves the others. "
        "IAM throttles each API per account, so what is measured is how close a tool gets to "
        "the account's rate limits, and what it delivers, on the same emulated account.",
        "",
        HOW_TO_READ,
        "",
    ]
    for run in ordered:
        lines += _section(run)
    lines += _targets(runs)
    return "\n".join(lines).rstrip() + "\n"
