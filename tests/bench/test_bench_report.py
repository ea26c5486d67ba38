"""The bench's typed results survive results.json, and results.md keeps its hand-written part."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import report, results, suite
from bench.__main__ import parse
from bench.limit import (
    ENTITIES,
    GENERATE,
    GET,
    WIDEST,
    Minimum,
    account_minima,
    fastest,
    forced,
    ideal_schedule,
    minimum_calls,
    org_limit,
)
from bench.results import Machine, Parameters, Run, ToolResult
from bench.score import score

TRUTH = [
    {"record": "service", "principal_arn": "arn:aws:iam::123456789012:group/g",
     "principal_type": "group", "service_namespace": "s3", "last_authenticated": "2024-01-01T00:00:00Z",
     "account_id": "123456789012"},
    {"record": "entity", "principal_arn": "arn:aws:iam::123456789012:group/g",
     "principal_type": "group", "service_namespace": "s3", "entity_arn": "arn:aws:iam::123456789012:user/u",
     "account_id": "123456789012"},
    {"record": "principal", "principal_arn": "arn:aws:iam::123456789012:group/g",
     "principal_type": "group", "account_id": "123456789012"},
]  # fmt: skip
RATES = {GENERATE: 20.0, GET: 20.0, ENTITIES: 20.0, "ListUsers": 10.0, "ListGroups": 10.0}
RATES |= {"ListRoles": 10.0, "ListPolicies": 10.0}


def _run() -> Run:
    minimum = minimum_calls(TRUTH)
    limit = fastest(minimum, RATES, 2.0)
    tool = ToolResult(
        name="collector",
        label="**collector (ours)**",
        baseline=False,
        processes=1,
        principals_run=1,
        principals_total=1,
        subset=False,
        wall=4.0,
        full_time=4.0,
        returncode=0,
        timed_out=False,
        peak_rss=70 * 2**20,
        cpu=0.5,
        calls={GENERATE: 1, GET: 2, ENTITIES: 1},
        throttled={GET: 1},
        other_refusals={},
        marker_pages={GET: 1},
        completeness=score(TRUTH, TRUTH),
        rows=3,
        efficiency=limit.t_min / 4.0,
        timeline=None,
    )
    return Run(
        key="default-1",
        scenario="default",
        title="default account",
        command="python -m bench",
        date="2026-11-23 12:00 UTC",
        machine=Machine(2, "cpu", 8.0, "Linux", "3.11", (1.0, 1.0, 1.0)),
        collector_commit="abc",
        parameters=Parameters(1, 1, 0, RATES, "lognormal:2:0.5", ()),
        capacity=None,
        minimum=minimum,
        limit=limit,
        ideal=None,
        tools=(tool,),
    )


def test_results_round_trip_through_json(tmp_path: Path) -> None:
    """What is saved loads back as equal typed objects, with the derived numbers intact."""
    run = _run()
    results.save(tmp_path, {run.key: run})
    loaded = results.load(tmp_path)
    assert loaded == {run.key: run}
    tool = loaded[run.key].tools[0]
    assert tool.polls_per_job == 1.0  # two Gets, one of them a later page, for one job
    assert tool.calls_total == 5
    assert tool.cpu_per_call_ms == 100.0


def test_rendering_replaces_only_the_generated_section(tmp_path: Path) -> None:
    """Tables are rewritten from results.json; the analysis below the marker is kept as is."""
    run = _run()
    (tmp_path / "results.md").write_text(
        "old tables\n" + report.END + "\n\n## Analysis\n\nwritten by hand\n", encoding="utf-8"
    )
    report.write(tmp_path, {run.key: run})
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    assert "old tables" not in text
    assert text.count(report.END) == 1
    assert text.endswith(report.END + "\n\n## Analysis\n\nwritten by hand\n")
    assert "| default | **collector (ours)** |" in text


def test_the_widest_report_bounds_t_min() -> None:
    """One report's entity calls cannot go faster than the bucket: a bound of its own."""
    wide = [
        {
            "record": "service",
            "principal_arn": "arn:aws:iam::123456789012:policy/p",
            "principal_type": "policy",
            "service_namespace": f"ns{index}",
            "last_authenticated": "2024-01-01T00:00:00Z",
            "account_id": "123456789012",
        }
        for index in range(100)
    ]
    limit = fastest(minimum_calls(wide), RATES, 2.0)
    assert limit.seconds[WIDEST] == (100 - 20) / 20
    assert limit.t_min == (100 - 20) / 20 + 2.0
    # Never above the operation's own bound: every report's calls share that one bucket.
    assert limit.seconds[WIDEST] <= limit.seconds[ENTITIES]


def test_forced_pages_and_random_refusals_raise_the_minimum() -> None:
    """Short pages the server sent and a throttle share both count as calls any sweep needs."""
    minimum = minimum_calls(TRUTH)
    harder = forced(minimum, {GET: 4}, 0.5)
    assert harder.calls[GET] == (minimum.jobs + 4) * 2
    assert harder.calls[GENERATE] == minimum.calls[GENERATE] * 2


def _jobs(count: int) -> Minimum:
    calls = {GENERATE: count, GET: count, ENTITIES: 0} | {op: 1 for op in list(RATES)[3:]}
    return Minimum(calls, {"role": count}, count, 0, 0, 0)


def test_the_ideal_scheduler_waits_for_the_slowest_account() -> None:
    """Accounts run side by side on their own buckets, and a run ends with its slowest account:
    twenty accounts finish later than one of them, though each alone needs the same time."""
    one = ideal_schedule([_jobs(200)], RATES, 2.0, 0.5)
    twenty = ideal_schedule([_jobs(200)] * 20, RATES, 2.0, 0.5)
    # The rates alone: 180 Generate calls past the burst at 20/s, then a job's latency.
    assert (200 - 20) / 20 + 2.0 < one < twenty
    # Not the sum: the accounts' buckets are their own.
    assert twenty < 2 * one
    # Without latency spread the slowest account is any account.
    assert ideal_schedule([_jobs(200)] * 20, RATES, 2.0, 0.0) == ideal_schedule(
        [_jobs(200)], RATES, 2.0, 0.0
    )


def test_an_organisation_is_limited_by_its_slowest_account() -> None:
    """Minima are counted per account; T_min is the largest account's, calls are summed."""
    other = [dict(record, account_id="210987654321") for record in TRUTH]
    extra = dict(other[2], principal_arn="arn:aws:iam::210987654321:role/r", principal_type="role")
    minima = account_minima([*TRUTH, *other, extra])
    assert sorted(m.jobs for m in minima) == [1, 2]
    total, limit = org_limit(minima, RATES, 2.0)
    assert total.jobs == 3
    assert total.calls[GENERATE] == 3
    assert limit == max((fastest(m, RATES, 2.0) for m in minima), key=lambda limit: limit.t_min)


def test_the_ideal_is_rendered_beside_t_min(tmp_path: Path) -> None:
    """A run with a simulated ideal gets its row: T_min / ideal bounds any scheduler."""
    run = replace(_run(), ideal=8.0)
    report.write(tmp_path, {run.key: run})
    text = (tmp_path / "results.md").read_text(encoding="utf-8")
    t_min = run.limit.t_min
    assert (
        f"| default-1 | **collector (ours)** | {t_min:.1f} | 8.0 | {t_min / 8:.2f} | 4.0 | 2.00 |"
        in text
    )
    assert "| default-1 |" not in report.render({run.key: _run()})  # no ideal, no row


def test_an_unthrottled_run_says_why_it_has_no_efficiency() -> None:
    """The cpu scenario has no rate limits, so no T_min: not a tool that missed principals."""
    base = _run()
    unthrottled = replace(
        base,
        parameters=replace(base.parameters, rates={}),
        tools=(replace(base.tools[0], efficiency=None),),
    )
    assert "| n/a: no rate limits |" in report.render({unthrottled.key: unthrottled})
    missing = replace(base, tools=(replace(base.tools[0], efficiency=None),))
    assert "| n/a: principals missing |" in report.render({missing.key: missing})


def _org_run(accounts: int, cpu: float, wall: float, ideal: float) -> Run:
    base = _run()
    tool = replace(
        base.tools[0], label="**collector --org, 1 process**", cpu=cpu, wall=wall, emulator_cpu=9.5
    )
    return replace(
        base,
        key=f"org-many-{accounts}",
        scenario="org-many",
        parameters=replace(base.parameters, accounts=accounts, principals=8),
        ideal=ideal,
        tools=(tool,),
    )


def test_an_organisation_row_shows_cpu_per_account_and_the_emulators_cpu() -> None:
    """CPU per account is the collector's CPU over the accounts; the emulator's CPU, the ideal
    and ideal / T sit beside it; the org-many targets judge T, CPU per account and RSS."""
    run = _org_run(accounts=1000, cpu=18.0, wall=50.0, ideal=12.5)
    text = report.render({run.key: run})
    assert (
        "| org-many-1000 | **collector --org, 1 process** | 1,000 x 8 | 50.0 | 12.5 | 0.25 | "
        "18.0 | 18.0 | 3600.00 | 70 | 9.5 |" in text
    )
    assert "| org-many: T <= 60 s | 50.0 s (org-many-1000) | **PASS** |" in text
    assert (
        "| org-many: collector CPU per account <= 20 ms | 18.0 ms (org-many-1000) | **PASS** |"
        in text
    )
    slow = _org_run(accounts=1000, cpu=30.0, wall=61.0, ideal=12.5)
    text = report.render({slow.key: slow})
    assert "| org-many: T <= 60 s | 61.0 s (org-many-1000) | **MISS** |" in text
    assert (
        "| org-many: collector CPU per account <= 20 ms | 30.0 ms (org-many-1000) | **MISS** |"
        in text
    )


def test_cpu_per_call_is_judged_against_the_plain_loop_of_the_same_run() -> None:
    """The cpu scenario's verdict is the collector's CPU per call over the plain loop's, both
    from the same run; an org sweep's per call is judged against that run's collector."""
    base = _run()
    ours = replace(base.tools[0], cpu=1.0)  # 5 calls: 200 ms per call
    plain = replace(base.tools[0], name="plain_loop", label="plain aiobotocore loop", cpu=2.5,
                    baseline=True)  # fmt: skip
    cpu = replace(base, key="cpu-1000", scenario="cpu", tools=(ours, plain),
                  parameters=replace(base.parameters, principals=1000))  # fmt: skip
    org = _org_run(accounts=1000, cpu=1.1, wall=50.0, ideal=12.5)
    text = report.render({cpu.key: cpu, org.key: org})
    assert "0.40x (cpu-1000) | **PASS** |" in text
    assert (
        "| org-many: CPU per call <= 1.2x the single-account sweep's (cpu scenario) | 1.10x" in text
    )


def test_the_accounts_verdict_is_the_ideal_over_t() -> None:
    """One process is judged by how close it comes to the simulated ideal scheduler."""
    base = _run()
    run = replace(base, key="accounts-200", scenario="accounts", ideal=18.0,
                  parameters=replace(base.parameters, accounts=20, principals=200),
                  tools=(replace(base.tools[0], wall=20.0),))  # fmt: skip
    assert "| accounts: ideal / T >= 0.9, one process | 0.90 (accounts-200) | **PASS** |" in (
        report.render({run.key: run})
    )


def test_rounds_keep_the_median_and_show_each() -> None:
    """Tools run in rounds keep the round with the median CPU per call, and list every round."""
    base = _run().tools[0]
    rounds: list[tuple[ToolResult, list[dict[str, Any]]]] = [
        (replace(base, cpu=cpu), []) for cpu in (0.9, 0.5, 0.7)
    ]
    kept, _ = suite._median_round(rounds)
    assert kept.cpu == 0.7
    assert kept.rounds_cpu_per_call_ms == (180.0, 100.0, 140.0)
    run = replace(_run(), tools=(kept,))
    assert "| **collector (ours)** | 180.00, 100.00, 140.00 | 140.00 |" in report.render(
        {run.key: run}
    )


def test_org_accounts_sizes_only_the_org_many_organisation() -> None:
    """`--org-accounts 400` makes org-many an organisation of 400 accounts (the issue's
    must-show) and leaves the accounts scenario's 20 as they are."""
    options, _ = parse(["--scenario", "accounts,org-many", "--org-accounts", "400"])
    assert [(s.name, s.accounts) for s in options.scenarios] == [
        ("accounts", 20),
        ("org-many", 400),
    ]
