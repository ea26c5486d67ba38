"""A check's rows: what was proved where, the result, and for a failure the action to add."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import orjson

from collector.errors import EXIT_AWS, EXIT_OK

Result = Literal["ok", "denied", "unreachable", "failed", "skipped"]
FAILING: frozenset[Result] = frozenset({"denied", "unreachable", "failed"})


@dataclass(frozen=True)
class Row:
    """One check: the IAM action it proves (or the step), where, and what came of it."""

    check: str  # the IAM action proved: iam:ListUsers, s3:PutObject, sts:AssumeRole...
    call: str  # the call that proved it: ListUsers(MaxItems=1), CreateMultipartUpload(KEY)...
    where: str  # the account, role or bucket the call was made as or on
    result: Result
    detail: str = ""  # what came back: who, how many, or AWS's error
    fix: str = ""  # for a failure: the exact action to add, and to whom or on what


@dataclass(frozen=True)
class Report:
    """Every row, and which member accounts were sampled of how many."""

    rows: tuple[Row, ...]
    sampled: tuple[str, ...] = ()
    members: int | None = None  # member accounts the selection holds; None: no organisation

    @property
    def passed(self) -> bool:
        return not any(row.result in FAILING for row in self.rows)

    @property
    def exit_code(self) -> int:
        """0 when every check passed, 3 when any was denied, unreachable or failed."""
        return EXIT_OK if self.passed else EXIT_AWS


def _cell(text: str, width: int) -> str:
    return text.ljust(width)


def table(report: Report) -> str:
    """Columns RESULT, CHECK, CALL, WHERE, NOTE (for a failure the fix, else what was seen)."""
    header = ("RESULT", "CHECK", "CALL", "WHERE", "NOTE")
    lines = [
        (r.result, r.check, r.call, r.where, r.fix or r.detail if r.result != "ok" else r.detail)
        for r in report.rows
    ]
    last = len(header) - 1
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(last)]
    out = [
        "  ".join(
            text if i == last else _cell(text, widths[i]) for i, text in enumerate(line)
        ).rstrip()
        for line in [header, *lines]
    ]
    failed = sum(row.result in FAILING for row in report.rows)
    if report.members is not None:
        out.append(
            f"member accounts checked: {len(report.sampled)} of {report.members} "
            f"({', '.join(report.sampled) or 'none'}; --sample N checks more)"
        )
    verdict = "all passed" if not failed else f"{failed} failed"
    out.append(f"collector check: {len(report.rows)} checks, {verdict}")
    return "\n".join(out) + "\n"


def as_json(report: Report) -> str:
    """One JSON document: `passed`, `checks` (one object per row), the sampled accounts."""
    document = {
        "passed": report.passed,
        "checks": [asdict(row) for row in report.rows],
        "sampled_accounts": list(report.sampled),
        "member_accounts": report.members,
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"


def render(report: Report, output_format: str) -> str:
    return as_json(report) if output_format == "json" else table(report)


def failing(rows: Sequence[Row]) -> bool:
    return any(row.result in FAILING for row in rows)
