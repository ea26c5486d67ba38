"""Resuming a .part: only complete principals of this run are kept, whatever state it is in."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from collector.models import Record
from collector.output.resume import ResumeState
from tests.support.records import (
    RUN,
    arn,
    file_sink,
    finish,
    line,
    principal_lines,
    read_lines,
    run_line,
    sweep,
    write_raw,
)


def _interrupted_file(name: str) -> list[Record]:
    """What a killed sweep leaves: alice complete, bob partial, carol failed, a run line."""
    alice = principal_lines("alice")
    return [
        line("service", "bob", service_namespace="s0"),
        alice[0],
        line("error", "carol", stage="generate", code="NoSuchEntity"),
        alice[1],
        line("entity", "bob"),
        *alice[2:],
        line("service", "dave"),
        run_line("interrupted", started="2024-05-01T01:02:03Z"),
        line("service", "dave", service_namespace="s1"),
    ]


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_resume_keeps_only_completed_principals(tmp_path: Path, name: str) -> None:
    """Resume keeps complete principals' lines; drops partial rows, errors, run and torn lines."""
    part = tmp_path / (name + ".part")
    old = _interrupted_file(name)
    write_raw(part, old, tail=b'{"record":"principal","principal_arn":"' + arn("dave").encode())
    sink, state = file_sink(tmp_path / name, part)
    assert state == ResumeState(
        completed=frozenset({arn("alice")}),
        run_id=RUN,
        started="2024-05-01T01:02:03Z",
        kept={"service": 2, "entity": 1, "principal": 1},
        dropped=len(old) - 4,
    )
    assert [r["principal_arn"] for r in read_lines(part)] == [arn("alice")] * 4
    sweep(sink, principal_lines("bob") + principal_lines("dave"))
    assert sink.counts == {"service": 6, "entity": 3, "principal": 3}
    final = finish(sink, run_line(), publish=True)
    assert final == str(tmp_path / name)
    records = read_lines(Path(final))
    assert records == [*principal_lines("alice"), *principal_lines("bob"),
                       *principal_lines("dave"), run_line()]  # fmt: skip
    assert not list(tmp_path.glob("*.tmp"))


def test_resume_survives_a_truncated_gzip_stream(tmp_path: Path) -> None:
    """A gzip .part cut off mid-stream (SIGKILL) keeps the principals flushed before the cut."""
    part = tmp_path / "out.jsonl.gz.part"
    with part.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb") as zipped:
        for record in principal_lines("alice"):
            zipped.write(json.dumps(record).encode() + b"\n")
        zipped.flush()  # a sync flush: alice is readable on disk before the cut
        readable = raw.tell()
        for i in range(500):
            zipped.write(json.dumps(line("service", "bob", n=i)).encode() + b"\n")
        zipped.flush()
    with part.open("r+b") as handle:  # cut inside bob's rows, losing the gzip trailer
        handle.truncate(readable + (part.stat().st_size - readable) // 2)
    sink, state = file_sink(tmp_path / "out.jsonl.gz", part)
    assert state.completed == frozenset({arn("alice")})
    assert state.kept == {"service": 2, "entity": 1, "principal": 1}
    final = finish(sink, run_line(), publish=True)
    assert final is not None
    assert read_lines(Path(final)) == [*principal_lines("alice"), run_line()]


def test_resume_from_yesterdays_part_moves_it(tmp_path: Path) -> None:
    """Resuming another .part (yesterday's name) carries its lines over and removes it."""
    old = tmp_path / "out-2024-05-01.jsonl.part"
    write_raw(old, principal_lines("alice"))
    old.chmod(0o600)
    sink, state = file_sink(tmp_path / "out-2024-05-02.jsonl", old)
    assert state.completed == frozenset({arn("alice")})
    assert not old.exists()
    final = finish(sink, run_line(), publish=True)
    assert final is not None
    assert read_lines(Path(final))[:-1] == principal_lines("alice")


def test_resume_with_nothing_complete_still_reports_the_run_id(tmp_path: Path) -> None:
    """No complete principal: nothing is kept, but the old run id is returned to continue it."""
    part = tmp_path / "out.jsonl.part"
    write_raw(part, [line("service", "bob", run_id="old-run")], tail=b'{"rec')
    sink, state = file_sink(tmp_path / "out.jsonl", part)
    assert (state.completed, state.run_id, state.started) == (frozenset(), "old-run", None)
    assert sum(state.kept.values()) == 0
    assert part.read_bytes() == b""
    finish(sink, run_line(), publish=False)
