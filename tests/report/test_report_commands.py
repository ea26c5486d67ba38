"""`collector report unused|summary|parquet` on real emulator sweeps, checked against ground truth."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from collector.emulator import EmulatorOptions, Faults, running_emulator
from tests.support.reporting import (
    Record,
    complete_services,
    expected_unused,
    is_unused,
    json_rows,
    report,
    sweep,
)

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

ACCOUNT = "333333333333"
PARTIAL_ACCOUNT = "444444444444"
TYPES = ("user", "group", "role", "policy")


class Swept:
    """A sweep's output file and the records a correct sweep writes."""

    def __init__(self, path: Path, truth: list[Record]) -> None:
        self.path = path
        self.truth = truth
        with (gzip.open if path.suffix == ".gz" else open)(path, "rt") as handle:
            self.lines = [json.loads(line) for line in handle]


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """A 40-principal account swept through the CLI."""
    out = tmp_path_factory.mktemp("report") / "sweep.jsonl"
    with running_emulator(
        EmulatorOptions(principals=40, seed=5, account_id=ACCOUNT, faults=Faults(short_page_max=7))
    ) as emu:
        proc = sweep(emu.endpoint, out)
        assert proc.returncode == 0, proc.stderr[-3000:]
        yield Swept(out, emu.ground_truth())


@pytest.fixture(scope="module")
def partial(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Swept]:
    """An account where a fifth of the jobs fail: the sweep ends `partial`, gzip output."""
    out = tmp_path_factory.mktemp("partial") / "sweep.jsonl.gz"
    faults = Faults(failed_share=0.2)
    with running_emulator(
        EmulatorOptions(principals=30, seed=9, account_id=PARTIAL_ACCOUNT, faults=faults)
    ) as emu:
        proc = sweep(emu.endpoint, out)
        assert proc.returncode == 1, proc.stderr[-3000:]
        truth = emu.ground_truth()
    yield Swept(out, truth)


def test_unused_equals_what_the_ground_truth_implies(swept: Swept) -> None:
    """Rows, ages, per-principal counts and who used a group's or policy's service, exactly."""
    today = datetime.now(UTC).date()
    seen: list[Record] = []
    for as_of, days in ((today, 30), (today + timedelta(days=200), 90), (today, 400)):
        proc = report(
            "unused", str(swept.path), "--days", str(days), "--as-of", as_of.isoformat(),
            "--format", "json",
        )  # fmt: skip
        got = json_rows(proc)
        want = expected_unused(swept.truth, as_of, days)
        assert got == want, f"as of {as_of}, {days} days"
        seen += want
    assert any(row["used_by"] for row in seen), "no group or policy row names its users"
    assert {row["principal_type"] for row in seen} == set(TYPES)


def test_unused_csv_is_the_same_rows(swept: Swept) -> None:
    """CSV (the default off a terminal) has one header and the same (principal, service) rows."""
    proc = report("unused", str(swept.path), "--days", "60", "--as-of", "2026-01-01")
    assert proc.returncode == 0, proc.stderr
    header, *rows = list(csv.reader(io.StringIO(proc.stdout)))
    assert header[:4] == [
        "principal_arn",
        "principal_type",
        "account_id",
        "service_namespace",
    ]
    want = expected_unused(swept.truth, date(2026, 1, 1), 60)
    assert [row[0:4:3] for row in rows] == [
        [r["principal_arn"], r["service_namespace"]] for r in want
    ]


def _expected_summary(truth: list[Record], as_of: date, days: int) -> dict[str, dict[str, Any]]:
    services = complete_services(truth)
    out: dict[str, dict[str, Any]] = {}
    for kind in TYPES:
        arns = {
            r["principal_arn"]
            for r in truth
            if r["record"] == "principal" and r["principal_type"] == kind
        }
        mine = [r for r in services if r["principal_type"] == kind]
        unused = sum(is_unused(r["last_authenticated"], as_of, days) for r in mine)
        used_ever = {r["principal_arn"] for r in mine if r["last_authenticated"] is not None}
        with_services = {r["principal_arn"] for r in mine}
        out[kind] = {
            "principals": len(arns),
            "granted_services": len(mine),
            "unused_services": unused,
            "unused_share": round(unused / len(mine), 4) if mine else None,
            "never_used_principals": len(with_services - used_ever),
            "errors": sum(
                1 for r in truth if r["record"] == "error" and r["principal_type"] == kind
            ),
            "incomplete": 0,
        }
    return out


def test_summary_per_account_and_type(swept: Swept) -> None:
    """Counts per principal type match the ground truth; a complete run says so."""
    as_of = date(2026, 6, 1)
    rows = json_rows(
        report("summary", str(swept.path), "--as-of", "2026-06-01", "--format", "json")
    )
    want = _expected_summary(swept.truth, as_of, 90)
    assert [r["principal_type"] for r in rows] == list(TYPES)
    for row in rows:
        assert row["account_id"] == ACCOUNT and row["run_status"] == "complete"
        assert {k: row[k] for k in want[row["principal_type"]]} == want[row["principal_type"]]


def test_partial_run_is_flagged(partial: Swept) -> None:
    """A partial sweep (gzip) is flagged on stderr and in run_status, and its errors counted."""
    proc = report("summary", str(partial.path), "--format", "json")
    rows = json_rows(proc)
    assert "collector: warning: account 444444444444" in proc.stderr and "partial" in proc.stderr
    want = _expected_summary(partial.truth, datetime.now(UTC).date(), 90)
    assert sum(w["errors"] for w in want.values()) > 0
    for row in rows:
        assert row["run_status"] == "partial"
        assert row["errors"] == want[row["principal_type"]]["errors"]
        assert row["principals"] == want[row["principal_type"]]["principals"]


def _rewrite(src: Path, dst: Path, change: Any) -> Path:
    lines = [json.loads(line) for line in src.read_text().splitlines()]
    kept = [json.dumps(out) for line in lines if (out := change(line)) is not None]
    dst.write_text("\n".join(kept) + "\n")
    return dst


def test_interrupted_and_unfinished_files_are_flagged(swept: Swept, tmp_path: Path) -> None:
    """A run line saying `interrupted`, or no run line at all, is never reported as complete."""
    interrupted = _rewrite(
        swept.path,
        tmp_path / "interrupted.jsonl",
        lambda r: r | {"status": "interrupted"} if r["record"] == "run" else r,
    )
    arns = sorted({r["principal_arn"] for r in swept.lines if r["record"] == "principal"})
    cut = set(arns[:5])  # as after SIGKILL: some principals without their completion line
    unfinished = _rewrite(
        swept.path,
        tmp_path / "unfinished.jsonl.part",
        lambda r: (
            None
            if r["record"] == "run" or (r["record"] == "principal" and r["principal_arn"] in cut)
            else r
        ),
    )
    for path, status, incomplete in (
        (interrupted, "interrupted", 0),
        (unfinished, "no run line", 5),
    ):
        proc = report("summary", str(path), "--format", "json")
        rows = json_rows(proc)
        assert {r["run_status"] for r in rows} == {status}
        assert sum(r["incomplete"] for r in rows) == incomplete
        assert "collector: warning:" in proc.stderr
    # Principals without their completion line are not judged as unused.
    got = json_rows(report("unused", str(unfinished), "--format", "json"))
    assert got and not cut & {r["principal_arn"] for r in got}


def test_newest_run_of_an_account_wins(swept: Swept, tmp_path: Path) -> None:
    """A glob over two nights of one account reports the newer sweep only, and says so."""
    older = _rewrite(
        swept.path,
        tmp_path / "night-1.jsonl",
        lambda r: (
            r
            | {"run_id": "older"}
            | (
                {"started": "2020-01-01T00:00:00Z", "status": "partial"}
                if r["record"] == "run"
                else {}
            )
        ),
    )
    assert older.exists()
    (tmp_path / "night-2.jsonl").write_text(swept.path.read_text())
    proc = report("summary", str(tmp_path / "night-*.jsonl"), "--format", "json")
    rows = json_rows(proc)
    assert {r["run_status"] for r in rows} == {"complete"}
    assert sum(r["principals"] for r in rows) == sum(
        1 for r in swept.truth if r["record"] == "principal"
    )
    assert "1 older run(s) ignored" in proc.stderr


def test_parquet_partitions_by_account_and_date(
    swept: Swept, partial: Swept, tmp_path: Path
) -> None:
    """Parquet per record kind under account_id=/date=; the same rows come back; re-export replaces."""
    to = tmp_path / "lake"
    for _ in range(2):
        proc = report(
            "parquet", str(swept.path), str(partial.path), "--to", str(to), "--format", "json"
        )
        written = json_rows(proc)
    started = {
        r["account_id"]: r["started"][:10]
        for s in (swept, partial)
        for r in s.lines
        if r["record"] == "run"
    }
    assert {(w["account_id"], w["date"]) for w in written} == set(started.items())
    files = sorted(p.relative_to(to).as_posix() for p in to.rglob("*.parquet"))
    assert len(files) == len(written)  # exporting twice wrote no second copy
    assert f"service/account_id={ACCOUNT}/date={started[ACCOUNT]}/" in "\n".join(files)
    con = duckdb.connect()
    got = con.execute(
        f"""SELECT account_id, date::VARCHAR, principal_arn, service_namespace,
                   strftime(last_authenticated, '%Y-%m-%dT%H:%M:%SZ')
            FROM read_parquet('{to}/service/**/*.parquet', hive_partitioning = true,
                              hive_types = {{'account_id': 'VARCHAR', 'date': 'DATE'}})"""
    ).fetchall()
    want = [
        (r["account_id"], started[r["account_id"]], r["principal_arn"], r["service_namespace"], r["last_authenticated"])
        for s in (swept, partial) for r in s.truth if r["record"] == "service"
    ]  # fmt: skip
    assert sorted(got, key=str) == sorted(want, key=str)
    errors = con.execute(f"SELECT count(*) FROM read_parquet('{to}/error/**/*.parquet')").fetchone()
    assert errors == (sum(1 for r in partial.truth if r["record"] == "error"),)


def test_html_is_one_self_contained_page(swept: Swept, tmp_path: Path) -> None:
    """--output x.html: tables and inline SVG charts, no script and nothing fetched at view time."""
    page = tmp_path / "report.html"
    proc = report("unused", str(swept.path), "--as-of", "2026-06-01", "--output", str(page))
    assert proc.returncode == 0 and proc.stdout == "", proc.stderr
    html = page.read_text()
    assert html.count("<svg") == 2 and "<table>" in html
    assert "<script" not in html and "<link" not in html
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    first = expected_unused(swept.truth, date(2026, 6, 1), 90)[0]
    assert first["service_namespace"] in html


@pytest.mark.parametrize("fmt", ["markdown", "table"])
def test_human_formats_name_every_table(swept: Swept, fmt: str) -> None:
    """markdown and table show each table's title and the principals (ARNs shortened in table)."""
    proc = report("summary", str(swept.path), "--format", fmt)
    assert proc.returncode == 0, proc.stderr
    assert "Per account and principal type" in proc.stdout and "Input runs" in proc.stdout
    assert ACCOUNT in proc.stdout and "complete" in proc.stdout
