"""The file writer on real files: a private .part, published by rename, write failures as errors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from collector.errors import OutputError
from collector.output.files import FileWriter
from collector.output.resume import ResumeState
from tests.support.records import (
    RUN,
    file_sink,
    finish,
    principal_lines,
    read_lines,
    run_line,
    sweep,
)


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
