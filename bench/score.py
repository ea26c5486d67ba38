"""Completeness: a tool's records against the ground truth, row by row."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Fields that differ between runs of the same account, never compared.
RUN_FIELDS = frozenset({"run_id", "job_id", "job_created", "job_completed"})


@dataclass(frozen=True)
class Completeness:
    """What a tool wrote of what it should have, per record kind."""

    principals_expected: int
    principals_reported: int  # got a `principal` line
    principals_duplicated: int
    services_expected: int
    services_found: int  # distinct (principal, namespace) rows that are expected
    services_duplicated: int
    services_cut_short: int  # reported principals with fewer service rows than expected
    entities_expected: int
    entities_found: int
    entities_duplicated: int
    rows_differing: int  # expected rows present with a different value in some field
    errors: int  # `error` lines the tool wrote

    @property
    def rows_expected(self) -> int:
        return self.principals_expected + self.services_expected + self.entities_expected

    @property
    def rows_lost(self) -> int:
        """Expected service, entity and principal rows that are missing."""
        return (
            self.principals_expected
            - self.principals_reported
            + self.services_expected
            - self.services_found
            + self.entities_expected
            - self.entities_found
        )

    @property
    def exact(self) -> bool:
        """Every row present exactly once, with the expected values."""
        return (
            self.rows_lost == 0
            and not self.principals_duplicated
            and not self.services_duplicated
            and not self.entities_duplicated
            and not self.rows_differing
        )


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a JSONL file (none if the tool never wrote it)."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield json.loads(line)


def _key(record: Mapping[str, Any]) -> tuple[str, ...]:
    kind = record["record"]
    if kind == "service":
        return (record["principal_arn"], record["service_namespace"])
    if kind == "entity":
        return (record["principal_arn"], record["service_namespace"], record["entity_arn"])
    return (record["principal_arn"],)


def score(
    records: Iterable[Mapping[str, Any]],
    ground_truth: Iterable[Mapping[str, Any]],
    principals: Collection[str] | None = None,
) -> Completeness:
    """Compare; `principals` limits the truth to the ARNs a subset run was given."""
    expected: dict[str, dict[tuple[str, ...], Mapping[str, Any]]] = {
        "service": {},
        "entity": {},
        "principal": {},
    }
    services_per_principal: Counter[str] = Counter()
    for record in ground_truth:
        kind = record["record"]
        if kind not in expected or (
            principals is not None and record["principal_arn"] not in principals
        ):
            continue
        expected[kind][_key(record)] = record
        if kind == "service":
            services_per_principal[record["principal_arn"]] += 1
    seen: dict[str, Counter[tuple[str, ...]]] = {kind: Counter() for kind in expected}
    differing = errors = 0
    found_per_principal: Counter[str] = Counter()
    for record in records:
        kind = record.get("record")
        if kind == "error":
            errors += 1
        if kind not in expected:
            continue
        key = _key(record)
        truth = expected[kind].get(key)
        if truth is None:
            continue
        seen[kind][key] += 1
        if seen[kind][key] == 1 and kind != "principal":
            if kind == "service":
                found_per_principal[record["principal_arn"]] += 1
            if any(
                record.get(field) != value
                for field, value in truth.items()
                if field not in RUN_FIELDS
            ):
                differing += 1
    reported = set(key[0] for key in seen["principal"])
    return Completeness(
        principals_expected=len(expected["principal"]),
        principals_reported=len(reported),
        principals_duplicated=sum(count - 1 for count in seen["principal"].values()),
        services_expected=len(expected["service"]),
        services_found=len(seen["service"]),
        services_duplicated=sum(count - 1 for count in seen["service"].values()),
        services_cut_short=sum(
            1 for arn in reported if found_per_principal[arn] < services_per_principal[arn]
        ),
        entities_expected=len(expected["entity"]),
        entities_found=len(seen["entity"]),
        entities_duplicated=sum(count - 1 for count in seen["entity"].values()),
        rows_differing=differing,
        errors=errors,
    )
