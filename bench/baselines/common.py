"""What the baseline scripts share: arguments, principals, and the collector's record builders."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from collector import models
from collector.models import CompletedJob, Principal, PrincipalType, RunContext

Record = dict[str, Any]
_UNKNOWN = datetime.fromtimestamp(0, UTC)  # a job date the peers do not keep

# The List* calls (method, result key, parameters) the CLI-style peers page through.
LISTINGS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("list_users", "Users", {}),
    ("list_groups", "Groups", {}),
    ("list_roles", "Roles", {}),
    ("list_policies", "Policies", {"Scope": "Local"}),
)


def parse_args(description: str) -> argparse.Namespace:
    """--endpoint-url, --output, and --arns (a file of ARNs: the subset to report)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--endpoint-url", required=True)
    parser.add_argument("--output", type=Path, required=True, help="JSONL of what it reported")
    parser.add_argument("--arns", type=Path, help="only these principals (one ARN a line)")
    return parser.parse_args()


def read_arns(path: Path | None) -> set[str] | None:
    """The subset of ARNs, or None for every principal."""
    if path is None:
        return None
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line}


def principal_type(arn: str) -> str:
    """`user`, `group`, `role` or `policy`, from the resource part of an IAM ARN."""
    return arn.split(":", 5)[5].split("/", 1)[0]


def _report(arn: str) -> tuple[RunContext, CompletedJob]:
    """What collector.models' builders need to know of a report, as far as a peer knows it.

    The peers keep no run id, job id or principal details: those fields stay empty (the score
    never compares them); every field it does compare comes from the collector's own builders.
    """
    kind = cast(PrincipalType, principal_type(arn))
    job = CompletedJob(
        principal=Principal(arn=arn, type=kind, name="", id="", path=""),
        job_id="",
        job_type="",
        job_created=_UNKNOWN,
        job_completed=_UNKNOWN,
        first_page=None,
    )
    return RunContext(run_id="", account_id=arn.split(":")[4]), job


def service_record(arn: str, item: Mapping[str, Any]) -> Record:
    """One ServicesLastAccessed item, built as the collector builds it."""
    return models.service_record(*_report(arn), item)


def entity_record(arn: str, namespace: str, item: Mapping[str, Any]) -> Record:
    """One EntityDetailsList item, built as the collector builds it."""
    return models.entity_record(*_report(arn), namespace, item)


def principal_record(arn: str) -> Record:
    """The marker that the tool got a report for this principal.

    Deliberately not collector.models.principal_record: that one carries the principal's
    name, id, path and its job's dates and counts, which the peers do not keep; the score only
    checks that the line exists.
    """
    return {
        "record": "principal",
        "schema": models.SCHEMA,
        "account_id": arn.split(":")[4],
        "principal_arn": arn,
        "principal_type": principal_type(arn),
    }


def write_records(path: Path, records: Iterable[Record]) -> int:
    """Append records as JSONL; returns how many."""
    count = 0
    with path.open("a", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record, separators=(",", ":")) + "\n")
            count += 1
    return count


def report(**summary: Any) -> None:
    """The script's own counts, one JSON line on stdout, for the bench to read."""
    print(json.dumps(summary), file=sys.stdout, flush=True)
