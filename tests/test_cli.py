"""The real CLI in subprocesses: demo, emulate + sweep, signals and resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from collector.emulator.stats import SERVED, ServedCalls, recording
from tests.support.cli import (
    COLLECTOR,
    FAST_ENV,
    cli,
    killed_on_failure,
    one_line_error,
    start_sweep,
    wait_for_progress,
)
from tests.support.sweeping import assert_matches_truth, read_lines

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

ACCOUNT = "123456789012"


@pytest.fixture(scope="module")
def slow_account() -> Iterator[Emulator]:
    """A 300-principal account whose Generate rate makes a sweep last several seconds."""
    faults = Faults(
        latency=0.3, short_page_max=40, rate_limits={"GenerateServiceLastAccessedDetails": 40}
    )
    with running_emulator(
        EmulatorOptions(principals=300, seed=21, faults=faults, account_id="210987654321")
    ) as emu:
        yield emu


def test_demo_runs_from_an_empty_directory(tmp_path: Path) -> None:
    """`collector demo` seeds the emulator, sweeps it and writes a complete file under ./out."""
    proc = cli("demo", "--principals", "120", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = (tmp_path / "out").glob("*.jsonl")
    lines = read_lines(path)
    assert lines[-1]["record"] == "run" and lines[-1]["status"] == "complete"
    assert lines[-1]["records"]["principal"] == 120
    assert str(path.relative_to(tmp_path)) in proc.stdout


def test_emulate_and_sweep_in_separate_processes(tmp_path: Path) -> None:
    """`collector emulate` prints its URL first; `collector sweep` against it exits 0."""
    with subprocess.Popen(
        [COLLECTOR, "emulate", "--port", "0", "--principals", "60", "--seed", "3"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    ) as server:  # fmt: skip
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            assert url.startswith("http://127.0.0.1:")
            proc = cli(
                "sweep", "--endpoint-url", url, "--output", "out/{account_id}.jsonl", cwd=tmp_path
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            lines = read_lines(tmp_path / "out" / f"{ACCOUNT}.jsonl")
            assert lines[-1]["status"] == "complete" and lines[-1]["records"]["principal"] == 60
            events = [json.loads(line)["event"] for line in proc.stderr.splitlines()]
            assert events[-1] == "collector.sweep.finished"
        finally:
            server.send_signal(signal.SIGTERM)
            assert server.wait(timeout=20) == 0


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130), (signal.SIGKILL, -9)]
)
def test_interrupted_sweep_resumes_to_the_full_result(
    slow_account: Emulator, tmp_path: Path, signum: int, code: int
) -> None:
    """SIGTERM/SIGINT stop gracefully (run line `interrupted`, .part kept); SIGKILL tears it; --resume finishes exactly."""
    proc = start_sweep(slow_account, tmp_path)
    with killed_on_failure(proc):
        part = wait_for_progress(tmp_path / "out", proc)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == code, stderr[-2000:]
    assert part.exists() and not list((tmp_path / "out").glob("*.jsonl"))
    if signum != signal.SIGKILL:
        assert "Traceback" not in stderr
        last = json.loads(part.read_text().splitlines()[-1])
        assert last["record"] == "run" and last["status"] == "interrupted"
    resumed = cli(
        "sweep",
        "--endpoint-url",
        slow_account.endpoint,
        "--output",
        "out/{account_id}-{date}.jsonl",
        "--resume",
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (final,) = (tmp_path / "out").glob("*.jsonl")
    assert not list((tmp_path / "out").glob("*.part"))
    lines = read_lines(final)
    assert_matches_truth(lines, slow_account.ground_truth())
    assert len({r["run_id"] for r in lines}) == 1  # a resumed sweep is still one run
    assert (
        lines[-1]["api_calls"]["GenerateServiceLastAccessedDetails"] < 300
    )  # done principals skipped


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ("rates: {generate: 5\n", ["YAML"]),
        ("ratez:\n  generate: 5\n", ["ratez"]),
        ("rates:\n  generate: fast\n", ["rates.generate"]),
        ("discovery:\n  include: ['team-[a']\n", ["discovery.include"]),
        ("discovery:\n  arns: ['arn:aws:s3:::bucket']\n", ["arn:aws:s3:::bucket"]),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, config: str, words: list[str]) -> None:
    """Malformed YAML, unknown keys, wrong types, bad globs and ARNs: exit 2, no file."""
    (tmp_path / "config.yaml").write_text(config)
    proc = cli(
        "sweep",
        "--config",
        "config.yaml",
        "--endpoint-url",
        "http://127.0.0.1:9",
        "--output",
        "out/x.jsonl",
        cwd=tmp_path,
    )
    one_line_error(proc, 2, *words)
    assert not (tmp_path / "out").exists()


def test_unknown_flag_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A usage error is one line, not a usage dump."""
    proc = cli("sweep", "--granularity", "weekly", cwd=tmp_path)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


def test_no_credentials_exit_3(tmp_path: Path) -> None:
    """Without any credentials the sweep refuses before any work."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
    }
    proc = subprocess.run(
        [COLLECTOR, "sweep", "--endpoint-url", "http://127.0.0.1:9", "--output", "out/x.jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    one_line_error(proc, 3, "credentials")
    assert not (tmp_path / "out").exists()


def test_unreachable_endpoint_exit_3(tmp_path: Path) -> None:
    """An endpoint nobody listens on is a clear error, not a hang or a traceback."""
    proc = cli(
        "sweep", "--endpoint-url", "http://127.0.0.1:9", "--output", "out/x.jsonl", cwd=tmp_path
    )
    one_line_error(proc, 3, "127.0.0.1:9")
    assert not (tmp_path / "out").exists()


def test_access_denied_on_discovery_exit_3(tmp_path: Path) -> None:
    """AccessDenied on ListUsers names the permission and publishes nothing."""
    faults = Faults(access_denied=frozenset({"ListUsers"}))
    with running_emulator(
        EmulatorOptions(principals=20, faults=faults, account_id="333333333333")
    ) as emu:
        proc = cli("sweep", "--endpoint-url", emu.endpoint, "--output", "out/x.jsonl", cwd=tmp_path)
    one_line_error(proc, 3, "iam:ListUsers")
    assert not list(tmp_path.glob("out/*"))  # neither a published file nor a stray .part


def test_unwritable_output_exit_4(slow_account: Emulator, tmp_path: Path) -> None:
    """An output directory that cannot be created is reported before any work."""
    (tmp_path / "file").write_text("not a directory")
    proc = cli(
        "sweep", "--endpoint-url", slow_account.endpoint, "--output", "file/out.jsonl", cwd=tmp_path
    )
    one_line_error(proc, 4, "file/out.jsonl")


def test_disk_full_mid_sweep_exit_4_and_part_left_for_resume(
    slow_account: Emulator, tmp_path: Path
) -> None:
    """A write failure (RLIMIT_FSIZE) mid-sweep is one line, exit 4, and the .part stays."""
    limit = "import resource,runpy,sys; resource.setrlimit(resource.RLIMIT_FSIZE,(150000,150000)); sys.argv=['collector',*sys.argv[1:]]; runpy.run_module('collector',run_name='__main__')"
    proc = subprocess.run(
        [sys.executable, "-c", limit, "sweep", "--endpoint-url", slow_account.endpoint, "--output", "out/x.jsonl"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=os.environ | FAST_ENV,
    )  # fmt: skip
    one_line_error(proc, 4, "out/x.jsonl", "--resume")
    assert (tmp_path / "out" / "x.jsonl.part").exists() and not (
        tmp_path / "out" / "x.jsonl"
    ).exists()


def test_secrets_never_reach_logs_and_output_is_private(
    slow_account: Emulator, tmp_path: Path
) -> None:
    """A recognisable secret key never appears in debug logs or output; files are 0600."""
    secret = "SECRETkeyZZ9f8e7d6c5b4a3928170zzSECRET"
    env = {
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_SESSION_TOKEN": "TOKENzz" + secret,
        "COLLECTOR_DISCOVERY_KINDS": "group",
    }
    proc = cli(
        "sweep",
        "--endpoint-url",
        slow_account.endpoint,
        "--output",
        "out/x.jsonl",
        "--log-level",
        "debug",
        cwd=tmp_path,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert secret not in proc.stderr and secret not in proc.stdout
    assert secret not in (tmp_path / "out" / "x.jsonl").read_text()
    assert (tmp_path / "out" / "x.jsonl").stat().st_mode & 0o777 == 0o600
    assert len(proc.stderr.splitlines()) > 5  # debug logging really was on


def generated(served: ServedCalls) -> int:
    """How many report jobs the emulator has generated so far."""
    return sum(
        row["calls"]
        for row in served.rows()
        if row["operation"] == "GenerateServiceLastAccessedDetails" and row["outcome"] == SERVED
    )


def test_second_signal_skips_the_grace(tmp_path: Path) -> None:
    """With jobs that never finish, one SIGINT waits out the grace; a second ends the sweep now."""
    faults = Faults(latency=0.2, stuck_share=0.3)
    options = EmulatorOptions(principals=60, faults=faults, account_id="444444444444")
    with recording(ServedCalls()) as served, running_emulator(options) as emu:
        proc = subprocess.Popen(
            [COLLECTOR, "sweep", "--endpoint-url", emu.endpoint, "--output", "out/x.jsonl"],
            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
            env=os.environ | FAST_ENV | {"COLLECTOR_SHUTDOWN_GRACE": "120"},
        )  # fmt: skip
        with killed_on_failure(proc):
            # Every principal generated: the stuck ones stay in flight and hold the stop open.
            deadline = time.monotonic() + 60
            while generated(served) < 60:
                assert proc.poll() is None and time.monotonic() < deadline, generated(served)
                time.sleep(0.05)
            assert proc.poll() is None
            proc.send_signal(signal.SIGINT)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=3)  # stuck jobs hold the graceful stop open
            proc.send_signal(signal.SIGINT)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr[-2000:]
    assert "collector.sweep.aborted" in stderr and "Traceback" not in stderr
    assert (tmp_path / "out" / "x.jsonl.part").exists() and not (
        tmp_path / "out" / "x.jsonl"
    ).exists()
