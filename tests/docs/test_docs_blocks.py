"""Every shell block of README.md and docs/ runs verbatim against the emulator, or says why not."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.docblocks import ROOT, pages, script, shell_blocks

pytestmark = pytest.mark.e2e

RUNNABLE = [page for page in pages() if any(b.mark != "not run" for b in shell_blocks(page))]


def test_every_shell_block_is_sh_and_runs_or_names_why_not() -> None:
    """A reader's shell block is `sh`; one that cannot run here says so, with a reason."""
    problems = []
    for page in pages():
        for block in shell_blocks(page):
            if block.language != "sh":
                problems.append(f"{block.where}: ```{block.language} (write ```sh)")
            if block.mark == "not run" and not block.argument:
                problems.append(f"{block.where}: 'not run' without a reason")
    assert not problems, "\n".join(problems)


def test_background_servers_of_different_pages_use_different_ports() -> None:
    """Pages run side by side (two test workers): no two pages' emulators share a port."""
    owner: dict[str, str] = {}
    for page in pages():
        for block in shell_blocks(page):
            if block.mark == "background":
                assert owner.setdefault(block.argument, block.page) == block.page, block.where


def _working_copy(destination: Path) -> None:
    """The repository's tracked files (mtimes kept, so make sees its install as current) and
    the repository's virtualenv, as a reader's clone after `make demo` has it."""
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in tracked)):
        source, target = ROOT / name, destination / name
        if source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    (destination / ".venv").symlink_to(ROOT / ".venv")


def _reader_environment(home: Path) -> dict[str, str]:
    """A reader's shell: no AWS or collector settings, an empty home, the venv not on PATH."""
    venv_bin = str(Path(sys.executable).parent)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != venv_bin)
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "COLLECTOR_"))}
    return keep | {"HOME": str(home), "PATH": path, "AWS_EC2_METADATA_DISABLED": "true"}


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_page_runs_verbatim(page: Path, tmp_path: Path) -> None:
    """The page's blocks, in order, in one shell, in a fresh working copy: every one succeeds."""
    copy, home = tmp_path / "clone", tmp_path / "home"
    home.mkdir()
    _working_copy(copy)
    proc = subprocess.Popen(
        ["bash", "-c", script(shell_blocks(page))],
        cwd=copy, env=_reader_environment(home), start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        output, _ = proc.communicate(timeout=900)
    finally:
        # Background blocks (an emulator) end with the page.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait()
    assert proc.returncode == 0, output[-6000:]
