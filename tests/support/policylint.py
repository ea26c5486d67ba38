"""parliament (duo-labs' IAM policy linter, from PyPI) on policy documents, in a subprocess.

A subprocess because parliament opens files at import that it never closes and imports
pkg_resources: warnings the test suite turns into errors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

_SCRIPT = """
import json, sys
import parliament
documents = json.load(sys.stdin)
findings = []
for document in documents:
    policy = parliament.analyze_policy_string(json.dumps(document))
    findings.append([
        [found.issue, parliament.enhance_finding(found).severity, str(found.detail)]
        for found in policy.findings
    ])
json.dump(findings, sys.stdout)
"""
SERIOUS = frozenset({"HIGH", "CRITICAL"})


def findings(documents: list[dict[str, Any]]) -> list[list[tuple[str, str, str]]]:
    """(issue, severity, detail) of every finding, per document, in order."""
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", _SCRIPT],
        input=json.dumps(documents),
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    return [[tuple(item) for item in found] for found in json.loads(done.stdout)]


def at_least(
    documents: list[dict[str, Any]], severities: frozenset[str]
) -> list[tuple[int, str, str, str]]:
    """(document index, issue, severity, detail) of the findings of these severities."""
    return [
        (index, issue, severity, detail)
        for index, found in enumerate(findings(documents))
        for issue, severity, detail in found
        if severity in severities
    ]
