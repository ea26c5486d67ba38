"""The output template: placeholders, what it refuses, and which .part a resume picks."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from collector.template import OutputTemplate
from tests.support.records import (
    ACCOUNT,
    find_resumable,
    render,
)


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
