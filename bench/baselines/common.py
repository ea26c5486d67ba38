"""What the baseline scripts share: arguments, principals, records shaped like the truth's."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

Record = dict[str, Any]

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


def _iso(value: datetime | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _common(kind: str, arn: str) -> Record:
    return {
        "record": kind,
        "schema": 1,
        "account_id": arn.split(":")[4],
        "principal_arn": arn,
        "principal_type": principal_type(arn),
    }


def service_record(arn: str, item: Mapping[str, Any]) -> Record:
    """One ServicesLastAccessed item, for scoring against the truth."""
    tracked = item.get("TrackedActionsLastAccessed")
    return _common("service", arn) | {
        "service_namespace": item["ServiceNamespace"],
        "service_name": item["ServiceName"],
        "last_authenticated": _iso(item.get("LastAuthenticated")),
        "last_authenticated_entity": item.get("LastAuthenticatedEntity"),
        "last_authenticated_region": item.get("LastAuthenticatedRegion"),
        "total_authenticated_entities": item.get("TotalAuthenticatedEntities"),
        "tracked_actions": None
        if tracked is None
        else [
            {
                "action_name": action["ActionName"],
                "last_accessed_time": _iso(action.get("LastAccessedTime")),
                "last_accessed_entity": action.get("LastAccessedEntity"),
                "last_accessed_region": action.get("LastAccessedRegion"),
            }
            for action in tracked
        ],
    }


def entity_record(arn: str, namespace: str, item: Mapping[str, Any]) -> Record:
    """One EntityDetailsList item, for scoring against the truth."""
    info = item["EntityInfo"]
    return _common("entity", arn) | {
        "service_namespace": namespace,
        "entity_arn": info["Arn"],
        "entity_name": info["Name"],
        "entity_type": info["Type"].lower(),
        "entity_id": info["Id"],
        "entity_path": info.get("Path"),
        "last_authenticated": _iso(item.get("LastAuthenticated")),
    }


def principal_record(arn: str) -> Record:
    """The marker that the tool got a report for this principal."""
    return _common("principal", arn)


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
