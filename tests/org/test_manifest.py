"""The org manifest: JSON shape, atomic 0600 writes, merging shard manifests, the merge command."""

from __future__ import annotations

import argparse
import json
import re
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from collector.errors import ConfigError, ManifestError, OutputError
from collector.org.listing import Account
from collector.org.manifest import (
    AccountEntry,
    AccountError,
    Manifest,
    merge,
    read_manifest,
    unswept_entry,
    write_manifest,
)
from collector.org.merge import add_manifest_parser, run_manifest
from collector.org.shard import Shard

RUN = "2026-11-23"
START = datetime(2026, 11, 23, 2, 0, 0, tzinfo=UTC)
ORG_IDS = [f"{n:012d}" for n in range(100000000001, 100000000001 + 12)]


def entry(account_id: str) -> AccountEntry:
    """A plausible entry: most complete, a few with other outcomes."""
    last = int(account_id[-1])
    if last == 3:
        return AccountEntry(
            account_id,
            "assume_role_denied",
            account_name=f"acct-{last}",
            state="ACTIVE",
            error=AccountError("AccessDenied", "not authorized to perform: sts:AssumeRole"),
        )
    if last == 7:
        return unswept_entry(Account(account_id, f"acct-{last}", "SUSPENDED"))
    return AccountEntry(
        account_id,
        "complete",
        account_name=f"acct-{last}",
        state="ACTIVE",
        ou_path=("r-ab12", "ou-ab12-abcdefgh"),
        output=f"out/{account_id}.jsonl",
        records={"service": 40 + last, "entity": last, "principal": 4, "error": 0},
    )


def shard_manifest(index: int, count: int, ids: list[str] = ORG_IDS) -> Manifest:
    shard = Shard(index, count)
    return Manifest(
        run_id=RUN,
        organization_id="o-abcdefghij",
        started=START + timedelta(minutes=index),
        finished=START + timedelta(hours=1, minutes=index),
        accounts=tuple(entry(i) for i in ids if shard.owns(i)),
        listed_accounts=tuple(ids),
        shard=shard,
    )


def write_shards(directory: Path, manifests: list[Manifest]) -> list[Path]:
    paths: list[Path] = []
    for manifest in manifests:
        assert manifest.shard is not None
        path = directory / f"manifest-{manifest.shard.index}-{len(paths)}.json"
        write_manifest(manifest, path)
        paths.append(path)
    return paths


def test_manifest_round_trips_through_its_json(tmp_path: Path) -> None:
    """What is written reads back equal: every field of every entry survives."""
    manifest = shard_manifest(1, 3)
    path = tmp_path / "manifest.json"
    write_manifest(manifest, path)
    assert read_manifest(path) == manifest


def test_manifest_file_is_one_pretty_json_document_0600(tmp_path: Path) -> None:
    """One indented JSON object, snake_case keys, UTC times with Z, mode 0600, no temp left."""
    path = tmp_path / "out" / "manifest.json"
    write_manifest(shard_manifest(0, 1), path)
    text = path.read_text()
    document = json.loads(text)
    assert text.startswith('{\n  "manifest": 1,') and text.endswith("}\n")
    assert list(document) == [
        "manifest",
        "run_id",
        "organization_id",
        "shard",
        "merged_shards",
        "started",
        "finished",
        "outcomes",
        "listed_accounts",
        "accounts",
        "org_access",  # null unless --org-access-report
    ]
    assert document["started"] == "2026-11-23T02:00:00Z"
    assert document["shard"] == {"index": 0, "count": 1}
    assert document["outcomes"] == {"complete": 10, "assume_role_denied": 1, "suspended": 1}
    denied = next(a for a in document["accounts"] if a["outcome"] == "assume_role_denied")
    assert denied["error"] == {
        "code": "AccessDenied",
        "message": "not authorized to perform: sts:AssumeRole",
    }
    assert denied["output"] is None and denied["records"] == {}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["manifest.json"]


def test_failed_write_keeps_the_old_manifest_and_no_temporary(tmp_path: Path) -> None:
    """A write that fails at the rename leaves what was there and cleans up: OutputError."""
    target = tmp_path / "manifest.json"
    target.mkdir()  # a directory in the way: os.replace fails
    (target / "keep").write_text("old")
    with pytest.raises(OutputError, match="cannot write manifest") as caught:
        write_manifest(shard_manifest(0, 1), target)
    assert "\n" not in str(caught.value)
    assert (target / "keep").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.json"]


def test_rewriting_replaces_the_whole_file(tmp_path: Path) -> None:
    """A second write (a resumed run) replaces the manifest whole."""
    path = tmp_path / "manifest.json"
    write_manifest(shard_manifest(0, 1), path)
    later = replace(shard_manifest(0, 1), finished=START + timedelta(hours=5))
    write_manifest(later, path)
    assert read_manifest(path).finished == START + timedelta(hours=5)


@pytest.mark.parametrize(
    ("account", "excluded", "outcome"),
    [
        (Account("111111111111", "a", "SUSPENDED"), False, "suspended"),
        (Account("111111111111", "a", "PENDING_CLOSURE"), False, "pending_closure"),
        (Account("111111111111", "a", "CLOSED"), False, "closed"),
        (Account("111111111111", "a", "SOMETHING_NEW"), False, "not_active"),
        (Account("111111111111", "a", "ACTIVE"), True, "excluded"),
    ],
)
def test_unswept_accounts_get_their_outcome(account: Account, excluded: bool, outcome: str) -> None:
    """Not-ACTIVE accounts are reported by state; excluded ones as excluded."""
    made = unswept_entry(account, excluded=excluded)
    assert (made.outcome, made.state, made.output, made.error) == (
        outcome,
        account.state,
        None,
        None,
    )


def test_an_active_account_is_not_an_unswept_entry() -> None:
    """Asking for an unswept entry of an ACTIVE account is a programming error."""
    with pytest.raises(ValueError, match="ACTIVE"):
        unswept_entry(Account("111111111111", "a", "ACTIVE"))


def test_merge_combines_every_shard_into_the_org_manifest(tmp_path: Path) -> None:
    """Three shards' manifests become one: every account once, sorted, the run's time span."""
    paths = write_shards(tmp_path, [shard_manifest(i, 3) for i in (2, 0, 1)])
    output = tmp_path / "org" / "manifest.json"
    merged = merge(paths, output, expect_shards=3)
    assert [e.account_id for e in merged.accounts] == ORG_IDS
    assert merged.shard is None and merged.merged_shards == 3
    assert (merged.started, merged.finished) == (START, START + timedelta(hours=1, minutes=2))
    assert merged.outcomes() == {"complete": 10, "assume_role_denied": 1, "suspended": 1}
    assert read_manifest(output) == merged


def test_merge_names_missing_shards_and_writes_nothing(tmp_path: Path) -> None:
    """A shard that never finished: the error names it by index; no org manifest appears."""
    paths = write_shards(tmp_path, [shard_manifest(i, 4) for i in (0, 2)])
    output = tmp_path / "org.json"
    with pytest.raises(ManifestError, match=r"missing shards 1, 3 of 4 \(0-based\)"):
        merge(paths, output)
    assert not output.exists()


def test_merge_refuses_a_shard_given_twice(tmp_path: Path) -> None:
    """The same shard twice (an old and a rerun manifest): both files are named."""
    paths = write_shards(
        tmp_path, [shard_manifest(0, 2), shard_manifest(1, 2), shard_manifest(1, 2)]
    )
    with pytest.raises(ManifestError, match="shard manifests given twice: shard 1 ") as caught:
        merge(paths, tmp_path / "org.json")
    assert str(paths[1]) in str(caught.value) and str(paths[2]) in str(caught.value)


def test_merge_names_accounts_missing_from_every_shard(tmp_path: Path) -> None:
    """An account listed but in no shard's entries (e.g. joined the org mid-run) is named."""
    shards = [shard_manifest(i, 2) for i in range(2)]
    lost = shards[1].accounts[0].account_id
    shards[1] = replace(shards[1], accounts=shards[1].accounts[1:])
    with pytest.raises(ManifestError) as caught:
        merge(write_shards(tmp_path, shards), tmp_path / "org.json")
    assert str(caught.value) == f"accounts missing from every shard manifest: {lost}"


def test_merge_names_accounts_in_two_shards(tmp_path: Path) -> None:
    """An account reported by two shards (e.g. shards run with different counts) is named."""
    shards = [shard_manifest(i, 2) for i in range(2)]
    doubled = shards[1].accounts[0]
    shards[0] = replace(shards[0], accounts=(*shards[0].accounts, doubled))
    with pytest.raises(ManifestError) as caught:
        merge(write_shards(tmp_path, shards), tmp_path / "org.json")
    expected = f"accounts in more than one shard manifest: {doubled.account_id} (shards 0, 1)"
    assert str(caught.value) == expected


def test_merge_lists_at_most_ten_ids_in_its_line(tmp_path: Path) -> None:
    """Many missing accounts: ten are named, the rest counted, still one line."""
    ids = [f"{n:012d}" for n in range(200000000000, 200000000040)]
    shards = [replace(shard_manifest(i, 2, ids), accounts=()) for i in range(2)]
    with pytest.raises(ManifestError) as caught:
        merge(write_shards(tmp_path, shards), tmp_path / "org.json")
    message = str(caught.value)
    assert message.endswith(" and 30 more") and "\n" not in message
    assert message.count("2000000000") == 10


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"run_id": "2026-11-24"}, "shard manifests of different runs: 2026-11-23 (shards 0)"),
        ({"organization_id": "o-other"}, "shard manifests of different organisations"),
    ],
)
def test_merge_refuses_manifests_of_different_runs(
    tmp_path: Path, change: dict[str, Any], fragment: str
) -> None:
    """All shard manifests must share the run id and the organisation."""
    shards = [shard_manifest(0, 2), replace(shard_manifest(1, 2), **change)]
    with pytest.raises(ManifestError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        merge(write_shards(tmp_path, shards), tmp_path / "org.json")


def test_merge_checks_the_shard_count(tmp_path: Path) -> None:
    """Different counts, or not the count the pipeline expects: ManifestError."""
    with pytest.raises(ManifestError, match="different shard counts"):
        merge(write_shards(tmp_path, [shard_manifest(0, 2), shard_manifest(1, 3)]), tmp_path / "o")
    paths = write_shards(tmp_path / "b", [shard_manifest(i, 2) for i in range(2)])
    with pytest.raises(ManifestError, match="expected 3 shards, but the shard manifests say 2"):
        merge(paths, tmp_path / "o", expect_shards=3)


def test_unreadable_or_foreign_files_are_config_errors(tmp_path: Path) -> None:
    """Missing, not JSON, not a manifest, invalid field, or not a shard manifest: one line."""
    (tmp_path / "bad.json").write_text("{\n  nope")
    (tmp_path / "other.json").write_text('{"record": "run"}')
    good = shard_manifest(0, 1)
    document = json.loads(good.to_json())
    document["accounts"][0]["outcome"] = "great"
    (tmp_path / "outcome.json").write_text(json.dumps(document))
    write_manifest(replace(good, shard=None), tmp_path / "org.json")
    cases = {
        "absent.json": "cannot read manifest",
        "bad.json": "is not JSON (line 2)",
        "other.json": "not a schema-1 collector manifest",
        "outcome.json": "unknown outcome 'great'",
        "org.json": "is not a shard manifest",
    }
    for name, fragment in cases.items():
        with pytest.raises(ConfigError, match=re.escape(fragment)) as caught:
            merge([tmp_path / name], tmp_path / "out.json")
        assert "\n" not in str(caught.value)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="collector")
    add_manifest_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_merge_command_exit_codes_and_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`collector manifest merge`: 0 merged, 1 incomplete, 2 unreadable, 4 unwritable."""
    paths = [str(p) for p in write_shards(tmp_path, [shard_manifest(i, 3) for i in range(3)])]
    output = tmp_path / "org.json"
    cases = [
        ([*paths, "--output", str(output), "--expect-shards", "3"], 0, "merged 3 shard manifests"),
        ([*paths[:2], "--output", str(output)], 1, "incomplete run: missing shards 2 of 3"),
        ([str(tmp_path / "nope.json"), "-o", str(output)], 2, "cannot read manifest"),
        ([*paths, "--output", str(tmp_path)], 4, "cannot write manifest"),
    ]
    for argv, code, fragment in cases:
        output.unlink(missing_ok=True)
        assert run_manifest(parse(["manifest", "merge", *argv])) == code
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1, err
        assert output.exists() == (code == 0)


def test_merge_command_usage_errors_exit_2() -> None:
    """No --output, or a non-positive --expect-shards: argparse's usage exit 2."""
    for argv in (
        ["manifest", "merge", "a.json"],
        ["manifest", "merge", "a", "-o", "x", "--expect-shards", "0"],
    ):
        with pytest.raises(SystemExit) as caught:
            parse(argv)
        assert caught.value.code == 2
