"""Reading an interrupted `.part`: which principals are complete and trusted, and their lines."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from collector.errors import ConfigError
from collector.models import RECORD_FIELDS, SCHEMA, Record
from collector.template import PART_SUFFIX

# Record kinds a resumed file keeps for completed principals; errors and the run line are redone.
# policy_document lines (--policy-documents) are never kept: they are one set with no completion
# marker of its own, a stop may have cut it short, and it costs a few calls to read again, so a
# resumed sweep writes the whole set anew (never twice, never in part).
KEPT_KINDS = frozenset({"service", "entity", "principal"})


@dataclass
class _Tally:
    """What one principal's rows in the `.part` add up to, to check its `principal` line."""

    services: int = 0
    accessed: int = 0
    entities: int = 0
    marker: Record | None = None
    duplicate_marker: bool = False


@dataclass(frozen=True)
class ResumeState:
    """What a resumed `.part` already holds: the principals not to sweep again."""

    completed: frozenset[str] = frozenset()  # principal ARNs whose lines are kept
    run_id: str | None = None  # the run the `.part` belongs to: the resumed sweep continues it
    started: str | None = None  # `started` of the interrupted run line, if it was written
    kept: dict[str, int] = field(default_factory=dict)  # record kind -> lines kept
    dropped: int = 0  # lines not kept: incomplete principals, errors, and lines that did not check


def _lines(path: Path) -> Iterator[tuple[bytes, Record | None]]:
    """Complete lines of a plain or gzip file, parsed (None if not a JSON object).

    Stops quietly at a torn tail: a line without its newline, or a gzip member cut off by
    SIGKILL or a full disk.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)  # never a planted symlink
    with contextlib.ExitStack() as stack:
        handle: BinaryIO | gzip.GzipFile = stack.enter_context(os.fdopen(fd, "rb"))
        if path.name.removesuffix(PART_SUFFIX).endswith(".gz"):
            handle = stack.enter_context(gzip.GzipFile(fileobj=handle, mode="rb"))
        try:
            for raw in handle:
                if not raw.endswith(b"\n"):
                    return
                try:
                    record = json.loads(raw)
                except ValueError:  # also UnicodeDecodeError
                    record = None
                yield raw, record if isinstance(record, dict) else None
        except (EOFError, zlib.error, gzip.BadGzipFile):
            return


def part_run(path: Path, account_id: str) -> str | None:
    """The run a `.part` belongs to (the run id of its first line of the account), or None."""
    for _, record in _lines(path):
        if record is not None and record.get("account_id") == account_id:
            run_id = record.get("run_id")
            return run_id if isinstance(run_id, str) else None
    return None


def _belongs(record: Record, account_id: str, run_id: str) -> bool:
    """A schema-1 line (exactly its kind's keys) of this account and of the `.part`'s run."""
    return (
        record.keys() == RECORD_FIELDS.get(str(record.get("record")), frozenset())
        and record.get("schema") == SCHEMA
        and record.get("account_id") == account_id
        and record.get("run_id") == run_id
        and isinstance(record.get("principal_arn"), str)
    )


def _agrees(tally: _Tally) -> bool:
    """A `principal` line is trusted only if the rows before it add up to what it says."""
    marker = tally.marker
    return (
        marker is not None
        and not tally.duplicate_marker
        and marker.get("services") == tally.services
        and marker.get("services_accessed") == tally.accessed
        and marker.get("entities") == tally.entities
    )


def scan(path: Path, *, account_id: str) -> ResumeState:
    """Check a `.part` line by line; raise ConfigError if it is not a `.part` of this account.

    Kept: schema-1 lines of this account and of the file's own run, for principals whose
    `principal` line agrees with their rows. Everything else is dropped and its principal redone.
    """
    run_id: str | None = None
    started: str | None = None
    tallies: dict[str, _Tally] = {}
    rows: set[int] = set()  # hashes of (kind, principal, namespace, entity) seen: flat memory
    total = 0
    for _, record in _lines(path):
        total += 1
        if record is None:
            continue
        if run_id is None and record.get("account_id") == account_id:
            run_id = record.get("run_id") if isinstance(record.get("run_id"), str) else None
        if run_id is None or not _belongs(record, account_id, run_id):
            if record.get("record") == "run" and record.get("run_id") == run_id:
                started = started or record.get("started")
            continue
        kind = record.get("record")
        tally = tallies.setdefault(record["principal_arn"], _Tally())
        key = hash(
            (
                str(kind),
                record["principal_arn"],
                str(record.get("service_namespace")),
                str(record.get("entity_arn")),
            )
        )
        if kind in ("service", "entity") and key in rows:
            tally.duplicate_marker = True  # a row twice: the principal cannot be trusted
        rows.add(key)
        if kind == "service":
            tally.services += 1
            tally.accessed += record.get("last_authenticated") is not None
        elif kind == "entity":
            tally.entities += 1
        elif kind == "principal":
            tally.duplicate_marker |= tally.marker is not None
            tally.marker = record
    if total and run_id is None:
        raise ConfigError(
            f"{path} holds no schema-{SCHEMA} line of account {account_id}: it is not a .part "
            "of this output; move it away or choose another --output"
        )
    completed = frozenset(arn for arn, tally in tallies.items() if _agrees(tally))
    kept = {
        "service": sum(tallies[arn].services for arn in completed),
        "entity": sum(tallies[arn].entities for arn in completed),
        "principal": len(completed),
    }
    return ResumeState(
        completed=completed,
        run_id=run_id,
        started=started,
        kept=kept,
        dropped=total - sum(kept.values()),
    )


def kept_lines(path: Path, state: ResumeState, *, account_id: str) -> Iterator[tuple[str, bytes]]:
    """(kind, raw line) of every line `scan` decided to keep, as it was: no re-serialization."""
    if state.run_id is None:
        return
    for raw, record in _lines(path):
        if (
            record is not None
            and record.get("record") in KEPT_KINDS
            and _belongs(record, account_id, state.run_id)
            and record["principal_arn"] in state.completed
        ):
            yield str(record["record"]), raw
