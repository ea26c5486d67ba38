"""Account names for reports: from org manifests given (--manifest) or found beside the inputs."""

# A manifest is found for an input file when all of this holds, so no name ever comes from a
# file that merely lies nearby:
# - it is `manifest.json` or `manifest-N.json` (what an org run or a shard writes by default,
#   in the directory its output template renders to) in the input's directory or up to
#   FOUND_LEVELS_UP above it (`out/{account_id}/{date}.jsonl` puts it one above); the nearest
#   directory with one that qualifies wins;
# - it is a schema-1 collector manifest;
# - one of its accounts is an account of the input, with an `output` whose last path parts are
#   the input's path below the manifest's directory (a `.part` matches its published name):
#   the manifest says it wrote this very file, wherever the files were copied together.
# The report reads the manifest's format itself (schema 1: `accounts[]` with `account_id`,
# `account_name`, `output`; see collector/org/manifest.py): reports never import the org layer.

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from collector.report.model import ReportInputError
from collector.template import PART_SUFFIX

if TYPE_CHECKING:
    import duckdb

MANIFEST_NAME = re.compile(r"manifest(-[0-9]+)?\.json")
FOUND_MAX_BYTES = 64 << 20  # a manifest of 100,000 accounts is ~40 MB; larger is not one
FOUND_LEVELS_UP = 3  # an output template's directories below its manifest's; no walk to /
CHART_NAME_CHARS = 24  # a chart label's room for a name


class _NotAManifest(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class _Manifest:
    finished: str
    accounts: tuple[tuple[str, str | None, str | None], ...]  # (id, name, output)


@dataclass(frozen=True, slots=True)
class AccountNames:
    """Account id -> name, and the manifests the names came from."""

    names: Mapping[str, str] = field(default_factory=dict)
    sources: tuple[str, ...] = ()

    @property
    def named(self) -> bool:
        """Whether a manifest was given or found: only then do tables get `account_name`, so a
        report without one is exactly what it was before names."""
        return bool(self.sources)

    def column(self) -> tuple[str, ...]:
        """The `account_name` column, last, when named; no column otherwise."""
        return ("account_name",) if self.named else ()

    def select(self, expression: str = "n.account_name") -> str:
        """`, EXPRESSION` for a query's SELECT list when named (EXPRESSION reads table
        `account_names` as `n`); nothing otherwise."""
        return f", {expression}" if self.named else ""

    def value(self, account_id: str) -> tuple[str | None, ...]:
        """The account_name cell of a row built in Python (no cell when not named)."""
        return (self.names.get(account_id),) if self.named else ()

    def label(self, account_id: str) -> str:
        """`name (id)`, or the id alone when the manifests do not name the account."""
        name = self.names.get(account_id)
        return f"{name} ({account_id})" if name else account_id

    def short(self, account_id: str) -> str:
        """A chart label: the name (cut to fit), or the id; the tables carry both."""
        name = self.names.get(account_id)
        if not name:
            return account_id
        return name if len(name) <= CHART_NAME_CHARS else name[: CHART_NAME_CHARS - 1] + "…"

    def context(self) -> dict[str, str]:
        """What the report's header says about where the names came from."""
        return {"account names": ", ".join(self.sources)} if self.sources else {}


def _parse(text: str) -> _Manifest:
    document = json.loads(text)
    if not isinstance(document, dict) or document.get("manifest") != 1:
        raise _NotAManifest("not a schema-1 collector manifest")
    accounts = document.get("accounts")
    if not isinstance(accounts, list):
        raise _NotAManifest("not a collector manifest: no accounts list")
    entries = []
    for item in accounts:
        if not isinstance(item, dict) or not isinstance(item.get("account_id"), str):
            raise _NotAManifest("not a collector manifest: an account without account_id")
        name, output = item.get("account_name"), item.get("output")
        entries.append(
            (
                item["account_id"],
                name if isinstance(name, str) else None,
                output if isinstance(output, str) else None,
            )
        )
    finished = document.get("finished")
    return _Manifest(finished if isinstance(finished, str) else "", tuple(entries))


def _merged(manifests: Iterable[_Manifest]) -> dict[str, str]:
    """Every named account; an account renamed between runs gets its newest name."""
    names: dict[str, str] = {}
    for manifest in sorted(manifests, key=lambda m: m.finished):
        names.update((account, name) for account, name, _ in manifest.accounts if name)
    return names


def given(paths: list[str]) -> AccountNames:
    """The manifests named with --manifest; ReportInputError when one cannot be used."""
    manifests = []
    for path in paths:
        if path.startswith("s3://"):  # as the inputs: reports read local files only
            raise ReportInputError(f"manifest {path}: s3:// is not supported yet; copy it locally")
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ReportInputError(
                f"manifest {path}: cannot read: {error.strerror or error}"
            ) from None
        except UnicodeDecodeError:
            raise ReportInputError(f"manifest {path}: not JSON (not UTF-8 text)") from None
        try:
            manifests.append(_parse(text))
        except json.JSONDecodeError as error:
            raise ReportInputError(f"manifest {path}: not JSON (line {error.lineno})") from None
        except _NotAManifest as error:
            raise ReportInputError(f"manifest {path}: {error}") from None
    return AccountNames(_merged(manifests), tuple(dict.fromkeys(paths)))


def _read_found(path: Path, cache: dict[Path, _Manifest | None]) -> _Manifest | None:
    """A candidate's manifest, or None when it is not one (silently: found, not given)."""
    if path not in cache:
        cache[path] = None
        try:
            if path.is_file() and path.stat().st_size <= FOUND_MAX_BYTES:
                cache[path] = _parse(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):  # JSONDecodeError is a ValueError
            pass
    return cache[path]


def _candidates(directory: Path, listed: dict[Path, list[Path]]) -> list[Path]:
    if directory not in listed:
        try:
            names = sorted(p for p in directory.iterdir() if MANIFEST_NAME.fullmatch(p.name))
        except OSError:
            names = []
        listed[directory] = names
    return listed[directory]


def _claims(manifest: _Manifest, below: tuple[str, ...], accounts: set[str]) -> bool:
    """Whether the manifest wrote the file at `below` (parts under its directory) for one of
    `accounts`."""
    for account, _, output in manifest.accounts:
        if account in accounts and output is not None:
            parts = tuple(part for part in output.split("/") if part)
            if parts[-len(below) :] == below:
                return True
    return False


def found(accounts_by_file: Mapping[str, set[str]]) -> AccountNames:
    """The manifests that wrote the input files (see the rules at the top of this module)."""
    cache: dict[Path, _Manifest | None] = {}
    listed: dict[Path, list[Path]] = {}
    used: dict[Path, _Manifest] = {}
    for name, accounts in accounts_by_file.items():
        path = Path(name).absolute()
        published = path.with_name(path.name.removesuffix(PART_SUFFIX))
        for directory in path.parents[: FOUND_LEVELS_UP + 1]:
            below = published.relative_to(directory).parts
            claiming = {
                candidate: manifest
                for candidate in _candidates(directory, listed)
                if (manifest := _read_found(candidate, cache)) is not None
                and _claims(manifest, below, accounts)
            }
            if claiming:
                used.update(claiming)
                break
    here = Path.cwd()  # named as the user would: relative when below the working directory
    sources = tuple(str(p.relative_to(here) if p.is_relative_to(here) else p) for p in sorted(used))
    return AccountNames(_merged(used.values()), sources)


def files_and_accounts(con: duckdb.DuckDBPyConnection, *tables: str) -> dict[str, set[str]]:
    """Each input file (as given) and the accounts its records belong to."""
    out: dict[str, set[str]] = {}
    for table in tables:
        for file, account in con.execute(
            f"SELECT DISTINCT file, account_id FROM {table}"
        ).fetchall():
            out.setdefault(file, set()).add(account)
    return out


def install(con: duckdb.DuckDBPyConnection, names: AccountNames) -> None:
    """Table `account_names` (account_id, account_name), which the report queries join."""
    con.execute("CREATE TABLE account_names (account_id VARCHAR PRIMARY KEY, account_name VARCHAR)")
    if names.names:
        con.executemany("INSERT INTO account_names VALUES (?, ?)", list(names.names.items()))
