"""Report output is private and never written through a symlink; a closed stdout is one line;
a killed sweep's `.part` (gzip or plain, its last line torn) is read and named in a warning."""

from __future__ import annotations

import gzip
import json
import os
import signal
import stat
import subprocess
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, Faults, running_emulator
from tests.support.cli import COLLECTOR, FAST_ENV, killed_on_failure
from tests.support.records import principal_lines, run_line
from tests.support.reporting import clean_env, json_rows, report

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess


def _export(path: Path, *, run: bool = True) -> Path:
    records = [
        r
        | {"principal_type": "user"}
        | ({"service_namespace": "s0"} if r["record"] == "entity" else {})
        for r in principal_lines("alice") + principal_lines("bob", 3)
    ]
    if run:
        records.append(run_line())
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)


@pytest.mark.parametrize("dangling", [False, True], ids=["to-a-file", "dangling"])
def test_output_never_writes_through_a_planted_symlink(tmp_path: Path, dangling: bool) -> None:
    """--output naming a symlink replaces the link; its target is neither changed nor created."""
    source = _export(tmp_path / "in.jsonl")
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_text("precious\n")
    link = tmp_path / "report.csv"
    link.symlink_to(victim)
    proc = report("summary", str(source), "--output", str(link))
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n" if not dangling else not victim.exists()
    assert not link.is_symlink() and link.read_text().startswith("account_id,principal_type,")
    assert _mode(link) == 0o600


def test_report_files_are_private(tmp_path: Path) -> None:
    """Report files are 0600 like exports: a new one, one replacing a 0644 file, and Parquet."""
    source = _export(tmp_path / "in.jsonl")
    fresh = tmp_path / "fresh.html"
    existing = tmp_path / "existing.md"
    existing.write_text("old\n")
    existing.chmod(0o644)
    for target in (fresh, existing):
        assert report("summary", str(source), "--output", str(target)).returncode == 0
        assert _mode(target) == 0o600, target
    assert existing.read_text().startswith("# Access Advisor summary")
    lake = tmp_path / "lake"
    assert report("parquet", str(source), "--to", str(lake), "--format", "csv").returncode == 0
    written = [p for p in lake.rglob("*") if p.is_file()]
    assert written and {_mode(p) for p in written} == {0o600}
    assert {_mode(p) for p in lake.rglob("*") if p.is_dir()} == {0o700}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_parquet_never_writes_through_a_planted_symlink(tmp_path: Path) -> None:
    """A symlink planted at a Parquet file is replaced; one at a partition folder is refused."""
    source = _export(tmp_path / "in.jsonl")
    lake = tmp_path / "lake"
    assert report("parquet", str(source), "--to", str(lake), "--format", "csv").returncode == 0
    planted = next(lake.glob("principal/*/*/*.parquet"))
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    planted.unlink()
    planted.symlink_to(victim)
    proc = report("parquet", str(source), "--to", str(lake), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    assert victim.read_text() == "precious\n"
    assert not planted.is_symlink() and planted.read_bytes().startswith(b"PAR1")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    folder = planted.parent
    for old in folder.iterdir():
        old.unlink()
    folder.rmdir()
    folder.symlink_to(elsewhere, target_is_directory=True)
    proc = report("parquet", str(source), "--to", str(lake), "--format", "csv")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert "symlink" in proc.stderr and list(elsewhere.iterdir()) == []
    assert not [p for p in lake.iterdir() if p.name.startswith(".")]  # nothing staged is left


def test_closed_stdout_is_one_line_and_exit_4(tmp_path: Path) -> None:
    """`collector report ... >&-`: one `collector: error:` line, exit 4, no traceback."""
    source = _export(tmp_path / "in.jsonl")
    for fmt in ([], ["--format", "csv"], ["--format", "table"]):
        proc = subprocess.run(
            [COLLECTOR, "report", "summary", str(source), *fmt], stdout=None,
            stderr=subprocess.PIPE, text=True, timeout=120, env=clean_env(),
            preexec_fn=lambda: os.close(1),
        )  # fmt: skip
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.splitlines() == [
            "collector: error: cannot write to stdout: it is closed; give --output a file path"
        ]


def _complete_lines(path: Path) -> list[dict[str, Any]]:
    """The whole lines a torn file holds, read independently of collector."""
    if not path.exists():
        return []
    data = path.read_bytes()
    if path.name.endswith(".gz.part"):
        data = zlib.decompressobj(31).decompress(data)  # no end-of-stream check
    return [json.loads(text) for text in data.split(b"\n")[:-1]]


def test_a_killed_gzip_sweep_part_is_reported_with_a_warning(tmp_path: Path) -> None:
    """SIGKILL mid-sweep: its `.jsonl.gz.part` is read to its last whole line, flagged."""
    faults = Faults(latency=0.3, rate_limits={"GenerateServiceLastAccessedDetails": 30})
    options = EmulatorOptions(principals=400, seed=12, faults=faults, account_id="282828282828")
    part = tmp_path / "out.jsonl.gz.part"
    with running_emulator(options) as emu:
        proc = subprocess.Popen(
            [COLLECTOR, "sweep", "--endpoint-url", emu.endpoint, "--output", "out.jsonl.gz",
             "--no-progress"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env=clean_env() | FAST_ENV,
        )  # fmt: skip
        with killed_on_failure(proc):  # type: ignore[arg-type]
            deadline = time.monotonic() + 120
            # The gzip .part is flushed every 5 s: wait for a few principals to be in it.
            while sum(r["record"] == "principal" for r in _complete_lines(part)) < 20:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
    lines = _complete_lines(part)
    with pytest.raises(EOFError):  # what SIGKILL leaves: a gzip stream without its end
        gzip.decompress(part.read_bytes())
    done = sum(1 for r in lines if r["record"] == "principal")
    proc2 = report("summary", str(part), "--format", "json")
    rows = json_rows(proc2)
    assert sum(r["principals"] for r in rows) == done
    assert {r["run_status"] for r in rows} == {"no run line"}
    warnings = [w for w in proc2.stderr.splitlines() if w.startswith("collector: warning:")]
    assert len(warnings) == 1 and str(part) in warnings[0] and "no run line" in warnings[0]


def test_a_torn_plain_part_is_read_to_its_last_whole_line(tmp_path: Path) -> None:
    """A plain `.jsonl.part` cut mid-line: the whole lines are reported, the file flagged."""
    whole = _export(tmp_path / "whole.jsonl", run=False).read_bytes()
    part = tmp_path / "cut.jsonl.part"
    part.write_bytes(whole[: whole.rindex(b"\n", 0, len(whole) - 1) + 40])  # bob's line, torn
    proc = report("summary", str(part), "--format", "json")
    rows = json_rows(proc)
    assert [(r["principals"], r["incomplete"], r["run_status"]) for r in rows] == [
        (1, 1, "no run line")
    ]
    assert f"in {part} has no run line" in proc.stderr
