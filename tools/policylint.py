"""Lint every IAM policy file under the given directories with parliament (`make lint`).

A policy file is a `*.json` file holding a policy document (a `Statement`). A
statement with a `Principal` and no `Resource` is a role's trust policy: parliament has no
mode for those (duo-labs/parliament#229: it reports every trust policy as MALFORMED for the
missing Resource), so each is checked as the resource policy it is, with the role it guards
as its Resource, which lets parliament check its actions, principals and condition keys
against sts:AssumeRole. Only parliament's own auditors run (its community auditors flag
sts:AssumeRole and ecr:GetAuthorizationToken themselves, which these roles exist to grant).

Exit 0 when no finding is MEDIUM or higher, 1 otherwise (each printed), 2 on bad input.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # parliament imports pkg_resources, deprecated
    import parliament

FAILING = ("MEDIUM", "HIGH", "CRITICAL")
# The resource a trust policy guards: the role itself, named after nothing in particular.
TRUSTING_ROLE = "arn:aws:iam::111122223333:role/trust-policy-under-lint"
TRUST_ACTIONS = frozenset(
    {
        "sts:assumerole",
        "sts:assumerolewithwebidentity",
        "sts:assumerolewithsaml",
        "sts:tagsession",
        "sts:setsourceidentity",
    }
)


def policy_files(roots: list[Path]) -> list[Path]:
    """Every JSON file under the roots whose document is an IAM policy."""
    found = []
    for root in roots:
        for path in sorted(root.rglob("*.json")):
            try:
                document = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                continue  # not JSON at all: no policy
            if isinstance(document, dict) and "Statement" in document:
                found.append(path)
    return found


def _statements(document: dict[str, Any]) -> list[Any]:
    statements = document["Statement"]
    return statements if isinstance(statements, list) else [statements]


def is_trust_policy(document: dict[str, Any]) -> bool:
    """A role's trust policy: its statements name a Principal and no Resource."""
    return all(
        isinstance(s, dict) and "Principal" in s and "Resource" not in s
        for s in _statements(document)
    )


def _trust_problems(document: dict[str, Any]) -> list[str]:
    """What parliament cannot know about a trust policy: only STS assume actions belong."""
    problems = []
    for statement in _statements(document):
        actions = statement.get("Action", [])
        problems += [
            f"HIGH - trust policy allows {action}, not an sts:AssumeRole*"
            for action in ([actions] if isinstance(actions, str) else actions)
            if str(action).lower() not in TRUST_ACTIONS
        ]
    return problems


def lint(path: Path) -> tuple[list[str], str]:
    """Findings of MEDIUM or higher as lines, and the kind of policy the file holds."""
    document = json.loads(path.read_text(encoding="utf-8"))
    kind = "identity"
    problems: list[str] = []
    if is_trust_policy(document):
        kind = "trust"
        problems += _trust_problems(document)
        for statement in _statements(document):
            statement["Resource"] = TRUSTING_ROLE
    analysed = parliament.analyze_policy_string(json.dumps(document), str(path))
    for finding in analysed.findings:
        parliament.enhance_finding(finding)
        if finding.severity in FAILING:
            problems.append(
                f"{finding.severity} - {finding.issue} - {finding.title} - {finding.detail}"
            )
    return problems, kind


def main(argv: list[str]) -> int:
    roots = [Path(arg) for arg in argv] or [Path("deploy"), Path("docs")]
    missing = [str(root) for root in roots if not root.is_dir()]
    if missing:
        print(f"policylint: error: not a directory: {', '.join(missing)}", file=sys.stderr)
        return 2
    files = policy_files(roots)
    failed = 0
    kinds = {"identity": 0, "trust": 0}
    for path in files:
        problems, kind = lint(path)
        kinds[kind] += 1
        for problem in problems:
            print(f"{path}: {problem}")
        failed += bool(problems)
    print(
        f"policylint: {len(files)} policy files ({kinds['identity']} identity, "
        f"{kinds['trust']} trust): {failed} with a MEDIUM or higher finding"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
