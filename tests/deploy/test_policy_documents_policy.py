"""deploy/iam/policy-documents-policy.json: what --policy-documents adds to the sweep policy."""

from __future__ import annotations

import json
from pathlib import Path

from collector.aws.iam import AUTHORIZATION_DETAILS
from tests.support.policylint import at_least

POLICY = Path(__file__).resolve().parents[2] / "deploy" / "iam" / "policy-documents-policy.json"


def test_the_policy_grants_the_one_call_and_lints_clean() -> None:
    """Exactly iam:GetAccountAuthorizationDetails; parliament finds nothing MEDIUM or above."""
    document = json.loads(POLICY.read_text())
    statements = document["Statement"]
    assert document["Version"] == "2012-10-17"
    assert [(s["Effect"], s["Action"]) for s in statements] == [
        ("Allow", f"iam:{AUTHORIZATION_DETAILS}")
    ]
    assert at_least([document], frozenset({"MEDIUM", "HIGH", "CRITICAL"})) == []
