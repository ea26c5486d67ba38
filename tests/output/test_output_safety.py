"""The output is never wrong: one run id, checked templates, a lock, no symlinks, checked resumes."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.cli import (
    COLLECTOR,
    FAST_ENV,
    cli,
    killed_on_failure,
    one_line_error,
    wait_for_progress,
)
from tests.support.sweeping import assert_matches_truth, read_lines

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

ACCOUNT = "135792468013"
UNREACHABLE = "http://127.0.0.1:9"  # any AWS call would fail with exit 3, not 2


@pytest.fixture(scope="module")
def account() -> Iterator[Emulator]:
    """A 200-principal account whose Generate rate makes a sweep last a few seconds."""
    faults = Faults(latency=0.2, rate_limits={"GenerateServiceLastAccessedDetails": 60})
    with running_emulator(
        EmulatorOptions(principals=200, seed=5, faults=faults, account_id=ACCOUNT)
    ) as emu:
        yield emu


def sweep(
    emulator: Emulator, output: str, cwd: Path, *extra: str
) -> subprocess.CompletedProcess[str]:
    return cli("sweep", "--endpoint-url", emulator.endpoint, "--output", output, *extra, cwd=cwd)


def test_run_id_in_the_name_is_the_records_run_id(account: Emulator, tmp_path: Path) -> None:
    """`{run_id}` in the output name is the run id every line of the file carries."""
    proc = sweep(account, "out/run-{run_id}.jsonl", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    (path,) = (tmp_path / "out").glob("run-*.jsonl")
    run_ids = {line["run_id"] for line in read_lines(path)}
    assert run_ids == {path.name.removeprefix("run-").removesuffix(".jsonl")}


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("out/{date:%Y}.jsonl", ["{date}", "takes no format", "write {date}"]),
        ("out/{date!r}.jsonl", ["{date}", "takes no format"]),
        ("out/{acount_id}.jsonl", ["unknown placeholder {acount_id}", "{account_id}"]),
        ("out/", ["names a directory"]),
    ],
)
def test_a_bad_template_is_exit_2_before_any_aws_call(
    tmp_path: Path, template: str, words: list[str]
) -> None:
    """The template is checked once, up front: exit 2 (not 3) with an unreachable endpoint."""
    proc = cli("sweep", "--endpoint-url", UNREACHABLE, "--output", template, cwd=tmp_path)
    one_line_error(proc, 2, *words)
    line = next(x for x in proc.stderr.splitlines() if x.startswith("collector: error:"))
    assert "known:" not in line or "{date}" not in line.split("known:")[0].replace(
        "{date}", "", 1
    ), line  # never "unknown {date} (known: {date})"
    assert list(tmp_path.iterdir()) == []


def test_an_output_that_is_a_directory_is_exit_2_before_any_aws_call(tmp_path: Path) -> None:
    """A directory where the file should go is refused up front, not after the whole sweep."""
    (tmp_path / "out.jsonl").mkdir()
    proc = cli("sweep", "--endpoint-url", UNREACHABLE, "--output", "out.jsonl", cwd=tmp_path)
    one_line_error(proc, 2, "out.jsonl", "is a directory")


def test_an_output_that_is_a_device_is_refused(tmp_path: Path) -> None:
    """`--output /dev/full` is not replaced by a regular file: exit 2, the device intact."""
    before = os.stat("/dev/full")
    proc = cli("sweep", "--endpoint-url", UNREACHABLE, "--output", "/dev/full", cwd=tmp_path)
    one_line_error(proc, 2, "/dev/full", "not a regular file")
    after = os.stat("/dev/full")
    assert (after.st_ino, after.st_mode, after.st_rdev) == (
        before.st_ino,
        before.st_mode,
        before.st_rdev,
    )


def test_two_sweeps_on_one_output_never_mix(account: Emulator, tmp_path: Path) -> None:
    """The second sweep stops at once (exit 5, naming the first); the first publishes exactly."""
    # Paced to 15 Generate calls/s, the first sweep lasts over ten seconds: still running when
    # the second starts, however loaded the machine.
    first = subprocess.Popen(
        [COLLECTOR, "sweep", "--endpoint-url", account.endpoint, "--output", "out/x.jsonl"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=os.environ | FAST_ENV | {"COLLECTOR_RATES_GENERATE": "15"},
    )  # fmt: skip
    with killed_on_failure(first):
        wait_for_progress(tmp_path / "out", first, principals=5)
        second = cli(
            "sweep", "--endpoint-url", UNREACHABLE, "--output", "out/x.jsonl", cwd=tmp_path
        )
        assert first.poll() is None, "the first sweep ended before the second started"
        one_line_error(second, 5, "another sweep", f"pid {first.pid}", "out/x.jsonl")
        _, stderr = first.communicate(timeout=120)
    assert first.returncode == 0, stderr[-2000:]
    published = tmp_path / "out" / "x.jsonl"
    lines = [json.loads(text) for text in published.read_text().splitlines()]  # every line parses
    assert_matches_truth(lines, account.ground_truth())
    assert not list((tmp_path / "out").glob("x.jsonl.*"))  # no .part, no lock left


def test_a_planted_part_symlink_is_never_followed(account: Emulator, tmp_path: Path) -> None:
    """`x.jsonl.part -> victim`: the victim keeps its bytes and mode; the output is right."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o644)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x.jsonl.part").symlink_to(victim)
    proc = sweep(account, "out/x.jsonl", tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert victim.read_text() == "precious\n" and (victim.stat().st_mode & 0o777) == 0o644
    published = tmp_path / "out" / "x.jsonl"
    assert not published.is_symlink() and (published.stat().st_mode & 0o777) == 0o600
    assert_matches_truth(read_lines(published), account.ground_truth())


def test_resume_drops_forged_and_foreign_lines(account: Emulator, tmp_path: Path) -> None:
    """A `.part` claiming a principal complete with a fake row, plus another account's lines:
    the forged principal is redone from AWS, the foreign lines dropped; the result is exact."""
    truth = account.ground_truth()
    admin = next(r for r in truth if r["record"] == "principal" and r["principal_type"] == "user")
    common = {"schema": 1, "run_id": "r0", "account_id": ACCOUNT, "job_id": "forged"}
    forged = [
        common | {"record": "service", "principal_arn": admin["principal_arn"],
                  "principal_type": "user", "service_namespace": "fake",
                  "last_authenticated": None},
        common | {"record": "principal", "principal_arn": admin["principal_arn"],
                  "principal_type": "user", "services": 1, "services_accessed": 0,
                  "entities": 0},
        common | {"record": "principal", "account_id": "999999999999",
                  "principal_arn": "arn:aws:iam::999999999999:user/x", "services": 0,
                  "services_accessed": 0, "entities": 0},
    ]  # fmt: skip
    (tmp_path / "out").mkdir()
    part = tmp_path / "out" / "x.jsonl.part"
    part.write_text("".join(json.dumps(r) + "\n" for r in forged))
    part.chmod(0o600)
    proc = sweep(account, "out/x.jsonl", tmp_path, "--resume")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = read_lines(tmp_path / "out" / "x.jsonl")
    assert_matches_truth(lines, truth)
    assert all(line["account_id"] == ACCOUNT for line in lines)


def test_resume_refuses_a_part_it_did_not_write(tmp_path: Path) -> None:
    """A world-readable `.part` (not written by collector) is not resumed: exit 2, untouched."""
    (tmp_path / "out").mkdir()
    part = tmp_path / "out" / "x.jsonl.part"
    part.write_text("")
    part.chmod(0o644)
    proc = cli(
        "sweep", "--endpoint-url", UNREACHABLE, "--output", "out/x.jsonl", "--resume", cwd=tmp_path
    )
    one_line_error(proc, 2, "x.jsonl.part", "will not be resumed")
    assert part.read_text() == "" and (part.stat().st_mode & 0o777) == 0o644
    assert sorted(p.name for p in part.parent.iterdir()) == ["x.jsonl.part"]  # no .tmp, no lock
