"""The HTML report in a real browser (headless Chromium): every column visible at 1,400 px, a
wide table scrolling in its own box, and cut tables saying so and linking their full CSV."""

from __future__ import annotations

import csv
import io
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import running_organization
from tests.support.browser import layout
from tests.support.org import org_args
from tests.support.reporting import org_sweep, report

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

AS_OF = "2026-06-01"
SHOWN = 2000  # rows an HTML table shows


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An organisation of four named accounts swept: over 2,000 unused (principal, service) rows,
    group and policy rows naming their users, long principal paths."""
    cwd = tmp_path_factory.mktemp("org-html")
    options = OrgOptions(accounts=4, principals=60, seed=3, faults=Faults(latency=0.1))
    with running_organization(options) as org:
        proc = org_sweep(*org_args(org), cwd=cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    yield str(cwd / "out" / "*.jsonl")


def _page(files: str, where: Path, kind: str = "unused") -> Path:
    page = where / "report.html"
    proc = report(kind, files, "--as-of", AS_OF, "--output", str(page))
    assert proc.returncode == 0, proc.stderr
    return page


def _rows(files: str) -> list[list[str]]:
    proc = report("unused", files, "--as-of", AS_OF, "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    return list(csv.reader(io.StringIO(proc.stdout)))


def _wide(measured: dict[str, Any]) -> dict[str, Any]:
    table: dict[str, Any] = next(
        t for t in measured["tables"] if t["title"].startswith("Granted and not used")
    )
    return table


@pytest.mark.parametrize("kind", ["unused", "summary"])
def test_every_column_is_visible_at_1400px(files: str, tmp_path: Path, kind: str) -> None:
    """In a 1,400 px window no table runs off the right edge: each header ends inside its box,
    each box inside the window, nothing hidden in a box, and the page does not scroll sideways."""
    measured = layout(_page(files, tmp_path, kind), 1400, 1500, tmp_path)
    viewport = measured["viewport"]
    assert measured["page_scroll_width"] <= viewport
    assert measured["tables"]
    for table in measured["tables"]:
        box = table["box"]
        assert box["overflow_x"] == "auto", table["title"]
        assert box["scroll_width"] <= box["client_width"], table["title"]
        assert box["right"] <= viewport, table["title"]
        for name, right in table["headers"]:
            assert right <= box["right"], f"{table['title']}: {name} ends at {right} px"
    if kind == "unused":
        assert _wide(measured)["headers"][-1][0] == "used_by"


def test_a_narrow_window_scrolls_the_table_box_not_the_page(files: str, tmp_path: Path) -> None:
    """At 600 px the wide table does not fit: its own box scrolls, the page stays put."""
    measured = layout(_page(files, tmp_path), 600, 1000, tmp_path)
    assert measured["page_scroll_width"] <= measured["viewport"]
    box = _wide(measured)["box"]
    assert box["overflow_x"] == "auto" and box["scroll_width"] > box["client_width"]
    assert box["right"] <= measured["viewport"]


def test_a_cut_table_says_how_many_and_links_its_full_csv(files: str, tmp_path: Path) -> None:
    """Over 2,000 rows: the page says how many it shows of how many, and links the full table
    as a private CSV beside the page, the rows `--format csv` gives; uncut tables get none."""
    page = _page(files, tmp_path)
    want = _rows(files)
    total = len(want) - 1
    assert total > SHOWN
    html = page.read_text()
    section = html.split('id="unused"')[1]
    # Said before the table, not after 2,000 rows of it.
    assert section.index(f"first {SHOWN:,} of {total:,} rows") < section.index("<table")
    assert html.count('href="report.unused.csv"') >= 1
    beside = tmp_path / "report.unused.csv"
    assert list(csv.reader(io.StringIO(beside.read_text()))) == want
    assert stat.S_IMODE(beside.stat().st_mode) == 0o600
    assert len(re.findall(r"<tr>", section)) == SHOWN + 1  # and the header row
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("probe")) == [
        "report.html",
        "report.unused.csv",
    ]  # the principals table is whole: no CSV of it; no temporary file left


def test_the_csv_beside_replaces_a_planted_symlink(files: str, tmp_path: Path) -> None:
    """A symlink where the CSV goes is replaced, never written through."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / "report.unused.csv").symlink_to(victim)
    _page(files, tmp_path)
    beside = tmp_path / "report.unused.csv"
    assert not beside.is_symlink() and beside.read_text().startswith("principal_arn,")
    assert victim.read_text() == "precious\n"
    assert stat.S_IMODE(os.stat(beside).st_mode) == 0o600


def test_html_on_stdout_says_how_many_and_how_to_get_them(files: str) -> None:
    """Without --output there is no place for a CSV: the page says how many rows it shows and
    how to get all of them, and links nothing."""
    proc = report("unused", files, "--as-of", AS_OF, "--format", "html")
    assert proc.returncode == 0, proc.stderr
    total = len(_rows(files)) - 1
    section = proc.stdout.split('id="unused"')[1]
    assert section.index(f"first {SHOWN:,} of {total:,} rows") < section.index("<table")
    assert "--output" in proc.stdout and "<a href" not in proc.stdout
