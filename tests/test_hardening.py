"""Never a traceback, never a hang: bad input, hostile endpoints and signals, through the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from tests.support.cli import COLLECTOR, FAST_ENV, cli, killed_on_failure, one_line_error
from tests.support.hostile import answering, endless, proxy, serving
from tests.support.sweeping import assert_matches_truth, normalized, read_lines

pytestmark = pytest.mark.e2e  # every test here starts the CLI in a subprocess

UNREACHABLE = "http://127.0.0.1:9"
QUICK = {"COLLECTOR_RETRY_CALL_TIMEOUT": "2", "COLLECTOR_RETRY_BASE_DELAY": "0.05"}


def sweep_args(endpoint: str = UNREACHABLE, output: str = "o.jsonl") -> list[str]:
    return ["sweep", "--endpoint-url", endpoint, "--output", output, "--no-progress"]


@pytest.mark.parametrize(
    ("extra", "env", "code", "words"),
    [
        (["--region", "eu_west_1"], {}, 2, ["region", "eu_west_1"]),
        (
            ["--endpoint-url", "http://127.0.0.1:99999"],
            {},
            2,
            ["endpoint_url", "Port out of range"],
        ),
        (["--endpoint-url", "http://[::1"], {}, 2, ["endpoint_url", "http://[::1"]),
        (["--endpoint-url", "http://a b"], {}, 2, ["endpoint_url", "http://a b"]),
        (["--endpoint-url", ""], {}, 2, ["endpoint_url", "got ''"]),
        (["--max-jobs-in-flight", "100000000000"], {}, 2, ["max_jobs_in_flight", "at most 10000"]),
        ([], {"AWS_PROFILE": "nosuch"}, 3, ["'nosuch'", "not found"]),
        ([], {"AWS_SECRET_ACCESS_KEY": ""}, 3, ["credentials", "AWS_SECRET_ACCESS_KEY"]),
    ],
)
def test_bad_input_is_one_line_and_its_exit_code(
    tmp_path: Path, extra: list[str], env: dict[str, str], code: int, words: list[str]
) -> None:
    """Wrong values, unknown profiles, half a key pair: one line, a documented exit code."""
    environment = {k: v for k, v in env.items() if v} | QUICK
    args = sweep_args() + extra
    full_env = os.environ | FAST_ENV | environment
    for name, value in env.items():
        if not value:
            full_env.pop(name, None)
    proc = subprocess.run(
        [COLLECTOR, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60, env=full_env
    )
    one_line_error(proc, code, *words)


@pytest.mark.parametrize(
    ("name", "text", "words"),
    [
        ("config", "[default\nregion=us-east-1\n", ["Unable to parse config file"]),
        ("process", "[default]\ncredential_process = /bin/false\n", ["custom-process"]),
        (
            "source",
            "[default]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = nope\n",
            ["source_profile", "nope"],
        ),
    ],
)
def test_broken_aws_configuration_is_exit_3(
    tmp_path: Path, name: str, text: str, words: list[str]
) -> None:
    """A ~/.aws/config that does not parse, a failing credential_process, a missing source."""
    config = tmp_path / name
    config.write_text(text)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("AWS_ACCESS") and not k.startswith("AWS_SECRET")
    }
    proc = subprocess.run(
        [COLLECTOR, *sweep_args()], cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env=env | FAST_ENV | {"AWS_CONFIG_FILE": str(config)},
    )  # fmt: skip
    one_line_error(proc, 3, "cannot load AWS credentials", *words)


def test_a_yaml_key_that_is_a_list_is_exit_2(tmp_path: Path) -> None:
    """`[1,2]: 2` in the config file is a YAML error line, not a TypeError traceback."""
    (tmp_path / "c.yaml").write_text("[1,2]: 2\n")
    proc = cli(*sweep_args(), "--config", "c.yaml", cwd=tmp_path)
    one_line_error(proc, 2, "c.yaml", "not valid YAML", "plain name")


def test_stdout_closed_is_exit_4(tmp_path: Path) -> None:
    """`--output -` with stdout closed (`>&-`): one line, exit 4, before any AWS call."""
    proc = subprocess.run(
        [COLLECTOR, *sweep_args(output="-")], cwd=tmp_path, stdout=None, stderr=subprocess.PIPE,
        text=True, timeout=60, env=os.environ | FAST_ENV,
        preexec_fn=lambda: os.close(1),
    )  # fmt: skip
    assert proc.returncode == 4, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "collector: error: cannot write to stdout: it is closed; give --output a file path"
    ]


ERROR_WITH_NEWLINE = (
    b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
    b"<Message>denied\ncollector: error: forged second line</Message></Error>"
    b"<RequestId>1</RequestId></ErrorResponse>"
)


@pytest.mark.parametrize(
    ("handler", "words"),
    [
        (answering(200, b"<html><body>Service Unavailable</body></html>"), ["MalformedResponse"]),
        (answering(200, b""), ["MalformedResponse"]),
        (
            answering(200, b"<GetCallerIdentityResponse><GetCallerIdentityResult><Acc"),
            ["Malformed"],
        ),
        (answering(200, b"<a>" * 1000, drip=1.0), ["Timeout"]),
        (endless(), ["over 64 MiB"]),
        (answering(403, ERROR_WITH_NEWLINE), ["AccessDenied", "forged second line"]),
    ],
    ids=["html", "empty", "truncated", "drip", "endless", "newline"],
)
def test_a_hostile_sts_endpoint_is_exit_3_in_one_line(
    tmp_path: Path, handler: type, words: list[str]
) -> None:
    """HTML, empty or cut-off XML, a drip, an endless body, a multi-line message: exit 3."""
    with serving(handler) as url:
        proc = cli(*sweep_args(url), cwd=tmp_path, env=QUICK, timeout=120)
    one_line_error(proc, 3, "sts:GetCallerIdentity", *words)
    assert not (tmp_path / "o.jsonl.part").exists()


def test_sigterm_during_a_hanging_start_exits_at_once(tmp_path: Path) -> None:
    """SIGTERM while STS drips (start-up, nothing to save yet): exit 143 within seconds."""
    asked = threading.Event()
    with serving(answering(200, b"<a>" * 1000, drip=5.0, asked=asked)) as url:
        proc = subprocess.Popen(
            [COLLECTOR, *sweep_args(url)], cwd=tmp_path, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, env=os.environ | FAST_ENV,
        )  # fmt: skip
        with killed_on_failure(proc):
            assert asked.wait(60), "the sweep never called STS"
            assert proc.poll() is None
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - sent < 10
    assert "Traceback" not in stderr


@pytest.fixture(scope="module")
def account() -> Iterator[Emulator]:
    with running_emulator(
        EmulatorOptions(
            principals=60, seed=8, faults=Faults(latency=0.1), account_id="246813579024"
        )
    ) as emu:
        yield emu


def test_a_malformed_operation_mid_sweep_becomes_error_records(
    account: Emulator, tmp_path: Path
) -> None:
    """Every entity page answered with HTML: those principals get `entities` errors, exit 1;
    every other principal is exact and the file is published."""

    def break_entities(operation: str, _: bytes) -> tuple[int, bytes] | None:
        if operation == "GetServiceLastAccessedDetailsWithEntities":
            return 200, b"<html>oops</html>"
        return None

    with proxy(account.endpoint, break_entities) as url:
        proc = cli(
            *sweep_args(url, "out.jsonl"),
            cwd=tmp_path,
            env=QUICK
            | {"COLLECTOR_RETRY_MAX_ATTEMPTS": "2", "COLLECTOR_RETRY_BREAKER_FAILURES": "10000"},
        )
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = read_lines(tmp_path / "out.jsonl")
    errors = [line for line in lines if line["record"] == "error"]
    assert errors and {(e["stage"], e["code"]) for e in errors} == {
        ("entities", "MalformedResponse")
    }
    failed = {e["principal_arn"] for e in errors}
    truth = [r for r in account.ground_truth() if r["principal_arn"] not in failed]
    kept = [r for r in lines if r["principal_arn"] not in failed]
    assert normalized(kept) == normalized(truth)
    assert lines[-1]["status"] == "partial"


def test_a_connection_cut_mid_answer_is_retried(account: Emulator, tmp_path: Path) -> None:
    """Three Get answers cut off after half their bytes (the connection closes): retried like a
    reset, and the sweep ends complete and exact, with no traceback."""
    cuts = [3]

    def cut_gets(operation: str, _: bytes) -> tuple[int, bytes, int] | None:
        if operation != "GetServiceLastAccessedDetails" or not cuts[0]:
            return None
        cuts[0] -= 1
        answer = b"<GetServiceLastAccessedDetailsResponse><GetServiceLastAccessedDetailsResult>"
        return 200, answer, 2 * len(answer)

    with proxy(account.endpoint, cut_gets) as url:
        proc = cli(*sweep_args(url, "out.jsonl"), cwd=tmp_path, env=QUICK)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert cuts == [0]
    assert normalized(read_lines(tmp_path / "out.jsonl")) == normalized(account.ground_truth())


def test_an_operation_that_always_fails_stops_the_sweep(account: Emulator, tmp_path: Path) -> None:
    """500 on every Generate: after a bounded run of failures, one line and exit 3."""

    def fail_generate(operation: str, _: bytes) -> tuple[int, bytes] | None:
        if operation == "GenerateServiceLastAccessedDetails":
            return (
                500,
                b"<ErrorResponse><Error><Code>InternalFailure</Code><Message>down</Message></Error></ErrorResponse>",
            )
        return None

    with proxy(account.endpoint, fail_generate) as url:
        started = time.monotonic()
        proc = cli(*sweep_args(url, "out.jsonl"), cwd=tmp_path, env=QUICK, timeout=120)
    one_line_error(proc, 3, "GenerateServiceLastAccessedDetails", "in a row", "--resume")
    assert time.monotonic() - started < 100


def test_a_killed_gzip_sweep_keeps_its_principals_for_resume(tmp_path: Path) -> None:
    """SIGKILL mid-sweep of a .jsonl.gz: the .part holds complete principals (flushed every few
    seconds), and --resume keeps them and finishes exactly."""
    faults = Faults(latency=0.2, rate_limits={"GenerateServiceLastAccessedDetails": 25})
    with running_emulator(
        EmulatorOptions(principals=300, seed=9, faults=faults, account_id="975318642097")
    ) as emu:
        args = sweep_args(emu.endpoint, "out/x.jsonl.gz")
        proc = subprocess.Popen(
            [COLLECTOR, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=os.environ | FAST_ENV | {"COLLECTOR_RATES_GENERATE": "25"},
        )  # fmt: skip
        part = tmp_path / "out" / "x.jsonl.gz.part"
        with killed_on_failure(proc):
            deadline = time.monotonic() + 60
            while not (part.exists() and part.stat().st_size > 2000):
                assert proc.poll() is None and time.monotonic() < deadline, "no data reached disk"
                time.sleep(0.1)
            proc.kill()
            proc.communicate(timeout=30)
        resumed = cli(*args, "--resume", cwd=tmp_path, timeout=180)
        assert resumed.returncode == 0, resumed.stderr[-2000:]
        kept = [
            json.loads(x) for x in resumed.stderr.splitlines() if '"collector.resume.kept"' in x
        ]
        assert kept and kept[0]["principals"] > 0
        assert_matches_truth(read_lines(tmp_path / "out" / "x.jsonl.gz"), emu.ground_truth())
