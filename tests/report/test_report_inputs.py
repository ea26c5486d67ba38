"""Bad report inputs are one line and exit 2; the sweep never imports the report's libraries."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from collector.cli import main
from tests.support.reporting import COLLECTOR, clean_env, report

GOOD = {
    "record": "principal",
    "schema": 1,
    "run_id": "r1",
    "account_id": "123456789012",
    "principal_arn": "arn:aws:iam::123456789012:user/a",
    "principal_type": "user",
    "job_id": "j",
}


def _lines(*records: dict[str, object]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


CASES = {
    "empty glob": (None, "no file matches"),
    "missing file": (None, "cannot read: No such file or directory"),
    "directory": (None, "is a directory"),
    "schema 2": (_lines(GOOD | {"schema": 2}), "schema 2, not schema 1"),
    "not an export": (_lines({"hello": "world"}), "not a collector export"),
    "garbage line": (_lines(GOOD) + "this is not json\n", "Malformed JSON"),
    "empty file": ("", "holds no records"),
    "bad account": (_lines(GOOD | {"account_id": "42"}), "is not 12 digits"),
    "bad timestamp": (_lines(GOOD | {"job_created": "yesterday"}), "not ISO-8601"),
    "not gzip": ("plain text, named .gz", "cannot read the input"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every kind of bad input: exit 2, one `collector: error:` line naming the problem.

    In-process through `collector.cli.main` (one subprocess case below shows the real process).
    """
    content, message = CASES[case]
    arg = str(tmp_path / "in.jsonl")
    if case == "empty glob":
        arg = str(tmp_path / "nothing-*.jsonl")
    elif case == "directory":
        arg = str(tmp_path)
    elif case == "not gzip":
        arg = str(tmp_path / "in.jsonl.gz")
        Path(arg).write_text(content or "")
    elif content is not None:
        Path(arg).write_text(content)
    for command in ("unused", "summary", "parquet"):
        extra = ["--to", str(tmp_path / "pq")] if command == "parquet" else []
        assert main(["report", command, arg, *extra]) == 2
        out, err = capsys.readouterr()
        assert out == ""
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("collector: error: "), err
        assert message in lines[0]


@pytest.mark.e2e
def test_bad_input_in_a_real_process(tmp_path: Path) -> None:
    """The installed command: mixed garbage is one line, exit 2, no traceback."""
    bad = tmp_path / "mixed.jsonl"
    bad.write_text(_lines(GOOD) + "\x00\x01 garbage\n" + _lines(GOOD))
    proc = report("summary", str(bad))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("collector: error: ") and proc.stderr.count("\n") == 1


@pytest.mark.e2e
def test_gzip_and_plain_read_the_same(tmp_path: Path) -> None:
    """A .jsonl.gz is read like the plain file."""
    plain = tmp_path / "a.jsonl"
    plain.write_text(_lines(GOOD, GOOD | {"principal_arn": "arn:aws:iam::123456789012:user/b"}))
    packed = tmp_path / "b.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    outputs = [report("summary", str(p), "--format", "json") for p in (plain, packed)]
    assert outputs[0].returncode == 0 and outputs[0].stdout == outputs[1].stdout
    assert json.loads(outputs[0].stdout.splitlines()[0])["principals"] == 2


@pytest.mark.e2e
def test_bad_flags_are_usage_errors(tmp_path: Path) -> None:
    """--days 0 and a malformed --as-of are argparse errors: one line, exit 2."""
    for flags in (["--days", "0"], ["--as-of", "23/11/2026"]):
        proc = report("unused", str(tmp_path / "x.jsonl"), *flags)
        assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr


def test_sweep_never_imports_duckdb() -> None:
    """Building the CLI parser (every command) imports neither DuckDB nor the report's work.

    (structlog imports rich by itself when rich is installed; a sweep-only install has none.)
    """
    code = (
        "import sys; from collector.cli import build_parser; build_parser(); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'duckdb' "
        "or m.startswith('collector.report.') and m != 'collector.report.command'))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"


@pytest.mark.e2e
def test_missing_extra_is_one_line(tmp_path: Path) -> None:
    """Without the report extra (duckdb unimportable), the command says how to install it."""
    shadow = tmp_path / "shadow" / "duckdb"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('duckdb is not installed')\n")
    proc = subprocess.run(
        [COLLECTOR, "report", "summary", "x.jsonl"], capture_output=True, text=True,
        env=clean_env() | {"PYTHONPATH": str(tmp_path / "shadow")}, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "collector: error: reports need their extra: pip install 'access-advisor-collector[report]'\n"
    )


def test_unwritable_output_is_exit_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--output into a missing folder: one line naming the file, exit 4 (as the sweep's)."""
    good = tmp_path / "in.jsonl"
    good.write_text(_lines(GOOD))
    target = tmp_path / "missing" / "report.csv"
    assert main(["report", "summary", str(good), "--output", str(target)]) == 4
    out, err = capsys.readouterr()
    assert (
        out == ""
        and err.splitlines()[-1] == f"collector: error: {target}: No such file or directory"
    )


def test_the_same_run_twice_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A sweep's .part next to its finished copy would count every row twice: exit 2."""
    (tmp_path / "a.jsonl").write_text(_lines(GOOD))
    (tmp_path / "a.jsonl.part").write_text(_lines(GOOD))
    assert main(["report", "unused", str(tmp_path / "a.jsonl*")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("collector: error: run r1 of account 123456789012 is given more")
