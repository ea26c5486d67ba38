"""The JSONL sink: compact UTF-8 lines, never interleaved, on a file or stdout."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from collector.output.sink import Sink, StdoutWriter, serialize
from tests.support.records import (
    file_sink,
    finish,
    line,
    read_lines,
    run_line,
    sweep,
)


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


def test_running_out_of_descriptors_is_not_called_a_permissions_problem(tmp_path: Path) -> None:
    """EMFILE while creating an output's lock or `.part` (a process at its open-files limit):
    the line says to raise `ulimit -n` or lower the accounts in flight, never to fix the
    directory's permissions or the output path."""
    script = textwrap.dedent(
        f"""
        import resource
        from collector.errors import OutputError
        from collector.output.files import FileWriter
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        held = []
        try:
            while True:
                held.append(open("/dev/null"))
        except OSError:
            pass
        for name, free in (("lock", 0), ("part", 1)):  # the lock takes the one free: no .part
            for _ in range(free):
                held.pop().close()
            try:
                FileWriter({str(tmp_path)!r} + f"/{{name}}.jsonl", run_id="r").open()
            except OutputError as error:
                print(error)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, (proc.stdout, proc.stderr)
    assert "lock.jsonl.lock" in lines[0] and "part.jsonl.part" in lines[1], lines
    for error in lines:
        assert "Too many open files" in error and "ulimit -n" in error, error
        assert "permissions" not in error and "fix the output path" not in error, error
