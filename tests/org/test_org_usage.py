"""Org selections and manifests that would sweep nothing, the wrong thing, or overwrite: exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from collector.config.loading import load_settings
from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from collector.errors import ConfigError
from collector.org.listing import check_account_id
from collector.org.shard import parse_shard
from tests.support.cli import cli, one_line_error
from tests.support.org import ROLE, org_args

UNREACHABLE = "http://127.0.0.1:9"  # nothing listens: any AWS call would be exit 3
# Twelve digits, but FULLWIDTH ones (U+FF10..U+FF19): `\d` and str.isdigit() take them.
FULL_WIDTH = "".join(chr(0xFF10 + int(digit)) for digit in "123456789012")


def offline(*extra: str) -> list[str]:
    """An org sweep's arguments whose AWS calls could only fail: usage errors must come first."""
    return ["sweep", "--role-name", ROLE, "--endpoint-url", UNREACHABLE, "--no-progress", *extra]


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    options = OrgOptions(accounts=3, principals=4, seed=31, faults=Faults(latency=0))
    with running_organization(options) as organization:
        yield organization


@pytest.mark.e2e
def test_an_included_account_the_org_does_not_have_is_exit_2(
    org: Organization, tmp_path: Path
) -> None:
    """`--include-accounts` naming an id the listing did not return: one line naming it, exit 2,
    no account swept and no manifest (a typo must not sweep nothing and succeed)."""
    member = org.accounts[1].id
    proc = cli(*org_args(org, "--include-accounts", f"{member},999999999999"), cwd=tmp_path)
    one_line_error(proc, 2, "999999999999", "--include-accounts")
    assert member not in proc.stderr.split("collector: error:")[1]
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flags", "env", "words"),
    [
        (["--accounts", ""], {}, ["--accounts"]),
        (["--accounts", " , "], {}, ["--accounts"]),
        (["--org", "--include-accounts", ""], {}, ["--include-accounts"]),
        (["--org", "--exclude-accounts", ""], {}, ["--exclude-accounts"]),
        (["--ou", ""], {}, ["--ou"]),
    ],
)
def test_an_empty_account_selection_is_exit_2(
    tmp_path: Path, flags: list[str], env: dict[str, str], words: list[str]
) -> None:
    """`--accounts ''` (an empty variable expanded into the flag) and the other selection flags
    given empty: exit 2, never a fall back to sweeping the caller's own account."""
    proc = cli(*offline("--output", "out/{account_id}.jsonl", *flags), cwd=tmp_path, env=env)
    one_line_error(proc, 2, *words)
    assert not (tmp_path / "out").exists()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flags", "env"),
    [
        (["--accounts", FULL_WIDTH], {}),
        (["--org", "--exclude-accounts", FULL_WIDTH], {}),
        (["--org", "--include-accounts", FULL_WIDTH], {}),
        (["--org"], {"COLLECTOR_ORG_EXCLUDE_ACCOUNTS": FULL_WIDTH}),
        (["--accounts", "accounts.txt"], {}),
    ],
)
def test_account_ids_are_twelve_ascii_digits(
    tmp_path: Path, flags: list[str], env: dict[str, str]
) -> None:
    """A full-width id (Unicode digits, which `\\d` matches) on the command line, in the
    environment or in an accounts file: exit 2 naming it, before any AWS call."""
    (tmp_path / "accounts.txt").write_text(FULL_WIDTH + "\n", encoding="utf-8")
    proc = cli(*offline("--output", "out/{account_id}.jsonl", *flags), cwd=tmp_path, env=env)
    one_line_error(proc, 2, FULL_WIDTH)


def test_only_ascii_digits_make_ids_and_shards() -> None:
    """The id and shard parsers reject Unicode digits (int() reads a fullwidth 1 as 1)."""
    with pytest.raises(ConfigError):
        check_account_id(FULL_WIDTH)
    with pytest.raises(ConfigError):
        parse_shard(f"{FULL_WIDTH[0]}/{FULL_WIDTH[2]}")
    with pytest.raises(ConfigError, match="12-digit"):
        load_settings(None, {"COLLECTOR_S3_BUCKET_OWNER": FULL_WIDTH}, {})


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("flags", "words"),
    [
        # Two shards would each publish out/m.json: the second would replace the first.
        (["--shard", "0/2", "--manifest", "out/m.json"], ["{shard}"]),
        (["--shard", "1/3", "--manifest", "s3://b/m/{run_id}.json"], ["{shard}"]),
        # The manifest would replace (or be replaced by) that account's export.
        (["--manifest", "out/123456789012.jsonl"], ["out/123456789012.jsonl"]),
        (["--manifest", "./out/../out/123456789012.jsonl.part"], ["123456789012"]),
    ],
)
def test_manifest_collisions_are_exit_2(tmp_path: Path, flags: list[str], words: list[str]) -> None:
    """A sharded run whose `--manifest` lacks {shard}, or a manifest path an account's output (or
    its .part) could have: one line, exit 2, before any AWS call."""
    proc = cli(*offline("--org", "--output", "out/{account_id}.jsonl", *flags), cwd=tmp_path)
    one_line_error(proc, 2, *words)
    assert not (tmp_path / "out").exists()
