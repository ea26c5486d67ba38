"""`report rightsize` written out: a JSON array, CSV, a terminal table, or each policy as a diff
(Markdown, or one self-contained HTML page in the look of the other reports)."""

from __future__ import annotations

import difflib
import json
from datetime import UTC, datetime
from html import escape
from typing import IO, Any

from collector import __version__
from collector.report import render
from collector.report.htmlpage import _CSS
from collector.report.model import Report, Table
from collector.report.rightsize import TRIM, Proposal, Rightsize

COLUMNS = (
    "account_id", "policy_arn", "owner_arn", "policy_name", "action", "removed", "attached_to",
    "unused_services", "used_services", "removed_services", "notes", "current_document",
    "proposed_document",
)  # fmt: skip
_DIFF_CSS = """
pre.diff { background: #f5f7fa; border: 1px solid #e4e7eb; padding: 8px 12px;
           font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; overflow-x: auto; }
pre.diff .del { background: #fdecea; color: #9b1c1c; display: block; }
pre.diff .ins { background: #e3f9e5; color: #05400a; display: block; }
pre.diff .hunk { color: #52606d; display: block; }
section.policy { border-top: 1px solid #e4e7eb; margin-top: 20px; }
ul.facts { margin: 4px 0 8px; padding-left: 18px; }
"""


def _compact(document: Any) -> str | None:
    return None if document is None else json.dumps(document, separators=(",", ":"))


def _table(report: Rightsize) -> Report:
    """The proposals as one flat table (csv, and the terminal)."""
    rows = [
        (
            p.account_id, p.policy_arn, p.owner_arn, p.policy_name, p.action,
            len(p.removed_services), p.attached_to, p.unused_services, p.used_services,
            p.removed_services, p.notes, _compact(p.current_document),
            _compact(p.proposed_document),
        )
        for p in report.proposals
    ]  # fmt: skip
    return Report(
        title=report.title,
        tables=[Table("rightsize", "Policies", COLUMNS, rows)],
        notes=report.notes,
        context=_context(report),
    )


def _summary(report: Rightsize) -> Report:
    """For a terminal: one line per policy, without the documents (--format markdown has them)."""
    columns = ("policy", "action", "removed", "removed_services", "principals", "notes")
    rows = [
        (p.label, p.action, len(p.removed_services), p.removed_services, len(p.attached_to),
         p.notes)
        for p in report.proposals
    ]  # fmt: skip
    return Report(
        title=report.title,
        tables=[Table("rightsize", "Policies", columns, rows)],
        notes=report.notes,
        context=_context(report),
    )


def _context(report: Rightsize) -> dict[str, str]:
    trims = [p for p in report.proposals if p.removed_services]
    return {
        "as of": report.as_of.isoformat(),
        "days": str(report.days),
        "policies": str(len(report.proposals)),
        "with services to remove": str(len(trims)),
        "services removed": str(sum(len(p.removed_services) for p in trims)),
    }


def write_json(report: Rightsize, out: IO[str]) -> None:
    """A JSON array, one object per policy, most services removed first."""
    json.dump([p.as_json() for p in report.proposals], out, indent=2, ensure_ascii=False)
    out.write("\n")


def _lines(document: Any) -> list[str]:
    if document is None:
        return []
    if isinstance(document, list):  # split into several policies
        return [
            line
            for n, part in enumerate(document, 1)
            for line in (f"// policy {n} of {len(document)}", *_lines(part))
        ]
    return json.dumps(document, indent=2, ensure_ascii=False).splitlines()


def diff(proposal: Proposal) -> list[str]:
    """The change as a unified diff of the pretty-printed documents."""
    return list(
        difflib.unified_diff(
            _lines(proposal.current_document),
            _lines(proposal.proposed_document),
            "current",
            "proposed",
            n=3,
            lineterm="",
        )
    )


def _heading(proposal: Proposal) -> str:
    """A policy's name, and its owner's for an inline one (`inline` alone says little)."""
    if proposal.owner_arn is None:
        return proposal.policy_name
    return f"{proposal.policy_name} (inline policy of {proposal.owner_arn.split(':', 5)[-1]})"


def _who(proposal: Proposal) -> str:
    if not proposal.attached_to:
        return "none (attached to nothing)"
    return ", ".join(arn.split(":", 5)[-1] for arn in proposal.attached_to)


def _facts(proposal: Proposal) -> list[tuple[str, str]]:
    facts = [
        ("policy", proposal.label),
        ("account", proposal.account_id),
        ("principals affected", _who(proposal)),
        ("removed", ", ".join(proposal.removed_services) or "nothing"),
        ("still used (kept)", ", ".join(proposal.used_services) or "none"),
    ]
    return facts + [("note", note) for note in proposal.notes]


def _others(report: Rightsize) -> list[Proposal]:
    return [p for p in report.proposals if p.action != TRIM]


def write_markdown(report: Rightsize, out: IO[str]) -> None:
    """Each trimmed policy as a diff, most services removed first; the rest in one table."""
    lines = [f"# {report.title}", ""]
    lines += [f"- {key}: {value}" for key, value in _context(report).items()]
    lines += [f"- **warning**: {note}" for note in report.notes]
    lines.append("")
    trims = [p for p in report.proposals if p.action == TRIM]
    for n, proposal in enumerate(trims, 1):
        count = len(proposal.removed_services)
        lines += [f"## {n}. {_heading(proposal)}: removes {count} service(s)", ""]
        lines += [f"- {key}: {value}" for key, value in _facts(proposal)]
        lines += ["", "```diff", *diff(proposal), "```", ""]
    others = _others(report)
    if others:
        lines += ["## No proposal to apply", "", "| policy | action | why |", "|---|---|---|"]
        for proposal in others:
            why = "; ".join(proposal.notes).replace("|", "\\|")
            lines.append(f"| {proposal.label} | {proposal.action} | {why} |")
        lines.append("")
    out.write("\n".join(lines))


def _html_diff(proposal: Proposal) -> str:
    rows = []
    for line in diff(proposal):
        css = ""
        if line.startswith("@@"):
            css = "hunk"
        elif line.startswith("+") and not line.startswith("+++"):
            css = "ins"
        elif line.startswith("-") and not line.startswith("---"):
            css = "del"
        text = escape(line)
        rows.append(f'<span class="{css}">{text}</span>' if css else text + "\n")
    return '<pre class="diff">' + "".join(rows) + "</pre>"


def write_html(report: Rightsize, out: IO[str]) -> None:
    """One page: headline figures, then each trimmed policy as a diff, then the rest."""
    made = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    context = _context(report)
    parts = [
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(report.title)}</title><style>{_CSS}{_DIFF_CSS}</style></head><body>",
        f"<h1>{escape(report.title)}</h1>",
        f'<p class="meta"><span>generated {made} by collector {__version__}</span></p>',
    ]
    parts += [f'<div class="warn">&#9888; {escape(note)}</div>' for note in report.notes]
    cards = (
        f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
        for label, value in context.items()
    )
    parts.append(f'<div class="cards">{"".join(cards)}</div>')
    for n, proposal in enumerate((p for p in report.proposals if p.action == TRIM), 1):
        count = len(proposal.removed_services)
        facts = "".join(
            f"<li>{escape(key)}: <b>{escape(value)}</b></li>" for key, value in _facts(proposal)
        )
        parts.append(
            f'<section class="policy"><h2>{n}. {escape(_heading(proposal))}: removes '
            f'{count} service(s)</h2><ul class="facts">{facts}</ul>{_html_diff(proposal)}'
            "</section>"
        )
    others = _others(report)
    if others:
        parts.append(f"<h2>No proposal to apply ({len(others):,})</h2>")
        parts.append("<table><thead><tr><th>policy</th><th>action</th><th>why</th></tr></thead>")
        parts.append("<tbody>")
        parts += [
            f'<tr><td class="wrap">{escape(p.label)}</td><td>{escape(p.action)}</td>'
            f'<td class="wrap">{escape("; ".join(p.notes))}</td></tr>'
            for p in others
        ]
        parts.append("</tbody></table>")
    parts.append("</body></html>\n")
    out.write("\n".join(parts))


def write(report: Rightsize, fmt: str, out: IO[str], *, terminal: bool) -> None:
    """The report in one of the formats `--format` names."""
    if fmt == "json":
        write_json(report, out)
    elif fmt == "markdown":
        write_markdown(report, out)
    elif fmt == "html":
        write_html(report, out)
    elif fmt == "csv":
        render.write_csv(_table(report), out)
    else:
        render.write_table(_summary(report), out, terminal=terminal)
