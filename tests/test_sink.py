"""Tests of the JSONL sink on real files: formats, permissions, publish, resume, write failures."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest

from collector.errors import OutputError
from collector.models import RECORD_FIELDS, Record
from collector.output.files import FileWriter
from collector.output.resume import ResumeState, kept_lines, scan
from collector.output.sink import Sink, StdoutWriter, serialize
from collector.template import OutputTemplate

ACCOUNT = "123456789012"
RUN = "run-1"


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def line(kind: str, name: str, run_id: str = RUN, **extra: Any) -> Record:
    """A schema-1 record of `kind` (every key of its kind; unset ones null)."""
    return dict.fromkeys(RECORD_FIELDS.get(kind, ())) | {
        "record": kind, "schema": 1, "run_id": run_id, "account_id": ACCOUNT,
        "principal_arn": arn(name),
    } | extra  # fmt: skip


def principal_lines(name: str, services: int = 2, run_id: str = RUN) -> list[Record]:
    """A complete principal: its service rows, an entity row, then its `principal` line."""
    rows = [line("service", name, run_id, service_namespace=f"s{i}") for i in range(services)]
    marker = line("principal", name, run_id, services=services, services_accessed=0, entities=1)
    return [*rows, line("entity", name, run_id), marker]


def run_line(status: str = "complete", started: str = "2024-05-01T00:00:00Z") -> Record:
    return {"record": "run", "schema": 1, "run_id": RUN, "account_id": ACCOUNT,
            "status": status, "started": started}  # fmt: skip


def file_sink(target: Path, resume_from: Path | None = None) -> tuple[Sink, ResumeState]:
    """A sink over a locked, opened file writer, carrying over `resume_from` as a sweep does."""
    writer = FileWriter(str(target), run_id=RUN, resume_from=resume_from)
    if resume_from is None:
        writer.open()
        return Sink(writer), ResumeState()
    state = scan(resume_from, account_id=ACCOUNT)
    writer.open(raw for _, raw in kept_lines(resume_from, state, account_id=ACCOUNT))
    return Sink(writer, state.kept), state


def finish(sink: Sink, record: Record, *, publish: bool) -> str | None:
    return anyio.run(lambda: sink.finish(record, publish=publish))


def render(template: str, **values: Any) -> str:
    return OutputTemplate.parse(template).render(**values)


def find_resumable(template: str, *, account_id: str) -> Path | None:
    return OutputTemplate.parse(template).resumable(account_id=account_id)


def read_lines(path: Path) -> list[Record]:
    """Every line; of a gzip stream still being written, the lines flushed so far."""
    opener = gzip.open if ".gz" in path.name else open
    records: list[Record] = []
    # EOFError: no gzip trailer yet, the sink has not finished.
    with opener(path, "rt", encoding="utf-8") as handle, contextlib.suppress(EOFError):
        records.extend(json.loads(text) for text in handle)
    return records


def write_raw(path: Path, records: list[Record], tail: bytes = b"") -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail
    if path.name.removesuffix(".part").endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def sweep(sink: Sink, records: list[Record], producers: int = 1) -> None:
    """Feed records to `sink.run` from several concurrent producers, as the pipeline does."""

    async def main() -> None:
        send, receive = anyio.create_memory_object_stream[Record](8)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sink.run, receive)
                async with send:
                    for index in range(producers):
                        tg.start_soon(produce, send.clone(), records[index::producers])

    async def produce(send: Any, share: list[Record]) -> None:
        async with send:
            for record in share:
                await send.send(record)

    anyio.run(main)


@pytest.fixture
def umask_zero() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_file_sink_writes_part_then_publishes(tmp_path: Path, name: str) -> None:
    """Records go to NAME.part as compact lines; finish(publish=True) renames it to NAME."""
    target = tmp_path / "nested" / "dir" / name
    sink, state = file_sink(target)
    assert state == ResumeState()
    records = principal_lines("alice") + principal_lines("bob", services=3)
    sweep(sink, records)
    part = Path(str(target) + ".part")
    assert part.exists()
    assert not target.exists()
    assert finish(sink, run_line(), publish=True) == str(target)
    assert not part.exists()
    assert read_lines(target) == [*records, run_line()]
    assert sink.counts == {"service": 5, "entity": 2, "principal": 2, "run": 1}
    if not name.endswith(".gz"):
        first = target.read_text(encoding="utf-8").splitlines()[0]
        assert first == json.dumps(records[0], separators=(",", ":"))


def test_lines_are_compact_utf8_and_never_interleave(tmp_path: Path) -> None:
    """Many concurrent producers still give one whole JSON object per line, UTF-8 kept as is."""
    target = tmp_path / "out.jsonl"
    sink, _ = file_sink(target)
    records = [line("service", f"user-{i}", note="Zoë " + "x" * (i % 50)) for i in range(2000)]
    sweep(sink, records, producers=8)
    finish(sink, run_line(), publish=True)
    raw = target.read_bytes()
    assert "Zoë".encode() in raw
    assert b"\\u00eb" not in raw
    parsed = read_lines(target)
    assert len(parsed) == 2001
    assert sorted(r["principal_arn"] for r in parsed[:-1]) == sorted(
        r["principal_arn"] for r in records
    )


def test_serialize_writes_the_bytes_json_dumps_would() -> None:
    """The contract's line format, held to the standard library's: compact, UTF-8 kept as is."""
    awkward = 'Zoë "quoted" back\\slash /slash \n\t\r\b\f \x00\x1f\x7f \u2028\u2029 😀 日本'
    records = [
        line("service", "plain"),
        line("entity", "Zoë", note=awkward, total_authenticated_entities=2**40, tracked=False),
        line("principal", "x", status="complete", nested={"a": [1, None, {"b": awkward}]}),
        {"record": "run", "api_calls": {"GetServiceLastAccessedDetails": 1000}, "empty": {}},
    ]
    expected = "".join(
        json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n" for record in records
    ).encode("utf-8")
    assert serialize(records) == expected
    assert serialize([]) == b""


@pytest.mark.usefixtures("umask_zero")
@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_output_is_mode_0600_even_under_umask_zero(tmp_path: Path, name: str) -> None:
    """The .part and the published file are owner-only, whatever the umask."""
    target = tmp_path / name
    sink, _ = file_sink(target)
    assert stat.S_IMODE(os.stat(str(target) + ".part").st_mode) == 0o600
    finish(sink, run_line(), publish=True)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


@pytest.mark.usefixtures("umask_zero")
def test_existing_part_is_replaced_by_a_private_one(tmp_path: Path) -> None:
    """A world-readable leftover .part is replaced by a new 0600 file when not resuming."""
    part = tmp_path / "out.jsonl.part"
    part.write_text('{"record":"service"}\n', encoding="utf-8")
    part.chmod(0o644)
    sink, _ = file_sink(tmp_path / "out.jsonl")
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    assert finish(sink, run_line(), publish=True) is not None
    assert read_lines(tmp_path / "out.jsonl") == [run_line()]


def test_interrupted_sweep_is_not_published(tmp_path: Path) -> None:
    """finish(publish=False) writes the run line into the .part and leaves it there."""
    target = tmp_path / "out.jsonl"
    sink, _ = file_sink(target)
    sweep(sink, principal_lines("alice"))
    assert finish(sink, run_line("interrupted"), publish=False) is None
    assert not target.exists()
    part = tmp_path / "out.jsonl.part"
    assert read_lines(part)[-1]["status"] == "interrupted"


def test_stdout_sink_writes_lines_without_files(tmp_path: Path) -> None:
    """`-` writes the same lines to stdout (a real pipe) and creates no file."""
    script = textwrap.dedent(
        """
        import anyio, sys
        from collector.output.sink import Sink, StdoutWriter
        sink = Sink(StdoutWriter())
        async def main():
            send, receive = anyio.create_memory_object_stream(4)
            async with anyio.create_task_group() as tg:
                tg.start_soon(sink.run, receive)
                async with send:
                    for i in range(3):
                        await send.send({"record": "service", "n": i, "name": "Zoë"})
        anyio.run(main)
        print(anyio.run(lambda: sink.finish({"record": "run"}, publish=True)), file=sys.stderr)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, check=True
    )
    lines = result.stdout.decode("utf-8").splitlines()
    assert [json.loads(text) for text in lines] == [
        *({"record": "service", "n": i, "name": "Zoë"} for i in range(3)),
        {"record": "run"},
    ]
    assert result.stderr.decode().strip() == "None"
    assert list(tmp_path.iterdir()) == []


def test_stdout_sink_under_capsys(capsys: pytest.CaptureFixture[str]) -> None:
    """The stdout sink writes through sys.stdout's buffer, where capture sees it."""
    sink = Sink(StdoutWriter())
    sweep(sink, [line("service", "alice")])
    assert finish(sink, run_line(), publish=True) is None
    out = capsys.readouterr().out.splitlines()
    assert [json.loads(text)["record"] for text in out] == ["service", "run"]


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


def test_output_template_fills_placeholders() -> None:
    """{account_id}, {date} (UTC) and {run_id} are filled; `-` stays stdout."""
    late_evening = datetime(2024, 5, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
    rendered = render(
        "out/{account_id}/{date}-{run_id}.jsonl.gz", account_id=ACCOUNT, run_id="r1",
        now=late_evening,
    )  # fmt: skip
    assert rendered == f"out/{ACCOUNT}/2024-05-02-r1.jsonl.gz"
    assert render("-", account_id=ACCOUNT, run_id="r1", now=late_evening) == "-"
    assert render("a{{b}}.jsonl", account_id="1", run_id="r", now=late_evening) == "a{b}.jsonl"


@pytest.mark.parametrize(
    ("template", "reason"),
    [
        ("out/{account}.jsonl", "unknown placeholder {account}"),
        ("out/{}.jsonl", "unknown placeholder {}"),
        ("out/{date:%Y}.x", "placeholder {date} in 'out/{date:%Y}.x' takes no format"),
        ("out/{date!r}.x", "placeholder {date} in 'out/{date!r}.x' takes no format"),
        ("out/", "names a directory"),
    ],
)
def test_output_template_rejects_what_it_cannot_render(template: str, reason: str) -> None:
    """Unknown placeholders, formats and conversions, and directories: one true reason each."""
    with pytest.raises(ValueError) as caught:
        OutputTemplate.parse(template)
    assert reason in str(caught.value)
    assert "known: {account_id}, {date}, {run_id}" in str(caught.value) or "unknown" not in reason


def test_find_resumable_picks_the_newest_matching_part(tmp_path: Path) -> None:
    """{date} and {run_id} match any value; the newest .part of this account wins."""
    template = str(tmp_path / "aa-{account_id}-{date}-{run_id}.jsonl")
    assert find_resumable(template, account_id=ACCOUNT) is None
    older = tmp_path / f"aa-{ACCOUNT}-2024-05-01-r1.jsonl.part"
    newer = tmp_path / f"aa-{ACCOUNT}-2024-05-02-r2.jsonl.part"
    other_account = tmp_path / "aa-999999999999-2024-05-03-r3.jsonl.part"
    published = tmp_path / f"aa-{ACCOUNT}-2024-05-04-r4.jsonl"
    for age, path in enumerate([published, other_account, newer, older]):
        path.write_text("", encoding="utf-8")
        os.utime(path, (1_700_000_000 - age * 3600, 1_700_000_000 - age * 3600))
    assert find_resumable(template, account_id=ACCOUNT) == newer
    assert find_resumable("-", account_id=ACCOUNT) is None


def test_find_resumable_treats_glob_characters_literally(tmp_path: Path) -> None:
    """Brackets and stars in the literal part of the template are not wildcards."""
    folder = tmp_path / "run[1]"
    folder.mkdir()
    (folder / "x.jsonl.part").write_text("", encoding="utf-8")
    assert find_resumable(str(folder / "x.jsonl"), account_id=ACCOUNT) == folder / "x.jsonl.part"
    assert find_resumable(str(tmp_path / "*.jsonl"), account_id=ACCOUNT) is None


def test_output_below_a_file_is_an_output_error(tmp_path: Path) -> None:
    """A path through a file (ENOTDIR) names the path, the OS reason and a fix."""
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    writer = FileWriter(str(blocker / "deeper" / "out.jsonl"), run_id=RUN)
    with pytest.raises(OutputError) as caught:
        writer.open()
    assert str(caught.value) == (
        f"cannot create {blocker / 'deeper' / 'out.jsonl.part'}: Not a directory; "
        "a parent of the output path is a file; choose another --output"
    )


def test_unwritable_output_path_is_an_output_error(tmp_path: Path) -> None:
    """A parent that is a file gives one line naming the path, the OS reason and a fix."""
    blocker = tmp_path / "file"
    blocker.write_text("", encoding="utf-8")
    writer = FileWriter(str(blocker / "out.jsonl"), run_id=RUN)
    with pytest.raises(OutputError) as caught:
        writer.open()
    message = str(caught.value)
    assert message == (
        f"cannot create {blocker / 'out.jsonl.part'}: {blocker} exists and is not a directory; "
        "choose another --output"
    )
    assert "\n" not in message


DISK_FULL = """
import os, resource, signal, sys, anyio
from collector.errors import OutputError
from collector.output.files import FileWriter
from collector.output.sink import Sink

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of being killed
resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))
writer = FileWriter(sys.argv[1], run_id="r")
writer.open()
sink = Sink(writer)

async def main():
    send, receive = anyio.create_memory_object_stream(16)
    async with anyio.create_task_group() as tg:
        tg.start_soon(sink.run, receive)
        async with send:
            for i in range(100_000):
                try:
                    await send.send({"record": "service", "schema": 1, "run_id": "r",
                        "account_id": "123456789012", "principal_arn": f"arn:u/{i}",
                        "pad": os.urandom(100).hex()})
                except anyio.BrokenResourceError:
                    return  # the sink failed and closed its end; its error tells why

failure = None
try:
    anyio.run(main)
except* OutputError as group:
    failure = group.exceptions[0]
print(failure, file=sys.stderr)
print("published:", anyio.run(lambda: sink.finish({"record": "run"}, publish=True)), file=sys.stderr)
"""


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_disk_full_is_an_output_error_and_leaves_the_part(tmp_path: Path, name: str) -> None:
    """RLIMIT_FSIZE (EFBIG) mid-sweep: OutputError naming path and fix; the .part stays."""
    target = tmp_path / name
    result = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    message, published = result.stderr.strip().splitlines()
    assert (
        message == f"cannot write {target}.part: File too large; free space and rerun with --resume"
    )
    assert published == "published: None"
    part = Path(f"{target}.part")
    assert part.exists()
    assert part.stat().st_size <= 64 * 1024
    assert not target.exists()
    # The .part is fit for --resume: a resume reads it, torn tail and all, without error.
    resumed, state = file_sink(target, part)
    assert state.completed == frozenset()
    assert finish(resumed, run_line("interrupted"), publish=False) is None
