"""The IAM policies we ship: whole files, linted by parliament, the docs' copies equal to them,
and the CloudFormation roles granting exactly what the files say."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
LINT = [sys.executable, str(ROOT / "tools" / "policylint.py")]
CFN_LINT = str(Path(sys.executable).parent / "cfn-lint")
TEMPLATES = sorted((ROOT / "deploy" / "cloudformation").glob("*.yaml"))
POLICY_DIRS = (ROOT / "deploy", ROOT / "docs")
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]

# The statement the issue found: s3:prefix is no condition key of ListBucketMultipartUploads,
# so on AWS the statement never matches and the orphan-upload check is denied.
BROKEN_S3 = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Sid": "FindPartsAndUploads",
            "Effect": "Allow",
            "Action": ["s3:ListBucket", "s3:ListBucketMultipartUploads"],
            "Resource": "arn:aws:s3:::example-access-advisor",
            "Condition": {"StringLike": {"s3:prefix": ["collector/*"]}},
        }
    ],
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::111122223333:role/collector-hub"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": "x-1"}},
        }
    ],
}


def policylint(*roots: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*LINT, *map(str, roots)], capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_every_policy_file_has_no_medium_or_higher_parliament_finding() -> None:
    """parliament over every policy under deploy/ and docs/, trust policies as trust policies."""
    proc = policylint(*POLICY_DIRS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    counts = re.search(r"(\d+) policy files \((\d+) identity, (\d+) trust\): 0 with", proc.stdout)
    assert counts is not None, proc.stdout
    files, trust = int(counts[1]), int(counts[3])
    on_disk = [p for d in POLICY_DIRS for p in d.rglob("*.json") if '"Statement"' in p.read_text()]
    assert files == len(on_disk) and files >= 22
    assert trust >= 9


def test_the_lint_fails_on_the_statement_it_was_added_for(tmp_path: Path) -> None:
    """The shipped defect (s3:prefix on ListBucketMultipartUploads) is a MEDIUM finding."""
    (tmp_path / "policy.json").write_text(json.dumps(BROKEN_S3))
    proc = policylint(tmp_path)
    assert proc.returncode == 1
    assert "s3:prefix" in proc.stdout and "s3:ListBucketMultipartUploads" in proc.stdout


def test_trust_policies_are_checked_as_trust_policies(tmp_path: Path) -> None:
    """A valid trust policy passes (no Resource is right for it); a misspelt condition key or
    a non-STS action in one fails."""
    (tmp_path / "good-trust.json").write_text(json.dumps(TRUST))
    proc = policylint(tmp_path)
    assert proc.returncode == 0, proc.stdout
    assert "(0 identity, 1 trust)" in proc.stdout
    misspelt = json.loads(json.dumps(TRUST))
    misspelt["Statement"][0]["Condition"] = {"StringEquals": {"aws:SourceAcount": "1"}}
    (tmp_path / "good-trust.json").write_text(json.dumps(misspelt))
    assert policylint(tmp_path).returncode == 1
    wrong = json.loads(json.dumps(TRUST))
    wrong["Statement"][0]["Action"] = ["sts:AssumeRole", "iam:PassRole"]
    (tmp_path / "good-trust.json").write_text(json.dumps(wrong))
    proc = policylint(tmp_path)
    assert proc.returncode == 1 and "iam:PassRole" in proc.stdout


def test_policy_blocks_in_the_docs_are_whole_policy_files() -> None:
    """Every policy shown in the README or docs/ is valid JSON on its own and equal to a file
    under docs/policies/ or deploy/ (no fragments to assemble by hand)."""
    files = {
        json.dumps(json.loads(p.read_text()), sort_keys=True)
        for d in POLICY_DIRS
        for p in d.rglob("*.json")
        if '"Statement"' in p.read_text()
    }
    shown = 0
    for doc in DOCS:
        for block in re.findall(r"```json\n(.*?)```", doc.read_text(encoding="utf-8"), re.S):
            if '"Effect"' not in block:
                continue  # manifests, records: not policies
            try:
                policy = json.loads(block)
            except ValueError:  # JSON Lines (records) are fine; a policy fragment is not
                for line in block.splitlines():
                    assert isinstance(json.loads(line), dict), f"{doc.name}: {block[:200]}"
                continue
            if "Statement" not in policy:
                continue  # a record that carries a policy document (policy_document lines)
            assert json.dumps(policy, sort_keys=True) in files, f"{doc.name}: {block[:200]}"
            shown += 1
    assert shown >= 6


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cloudformation_templates_pass_cfn_lint(template: Path) -> None:
    """Each template (an AWS::IAM::Role each) passes cfn-lint with no error or warning."""
    assert "AWS::IAM::Role" in template.read_text()
    proc = subprocess.run(
        [CFN_LINT, str(template)], capture_output=True, text=True, timeout=300, cwd=ROOT
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


class _TemplateLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short forms (`!Ref X` as {"Ref": "X"}, `!Sub` as Fn::Sub)."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_TemplateLoader.add_multi_constructor("!", _intrinsic)
_NO_VALUE = object()


class Stack:
    """A template evaluated for given parameters: Ref, Fn::Sub, Fn::If, Fn::Equals, Fn::Not."""

    def __init__(self, template: Path, **parameters: str) -> None:
        self.template = yaml.load(template.read_text(), Loader=_TemplateLoader)  # noqa: S506
        defaults = {
            name: spec["Default"]
            for name, spec in self.template["Parameters"].items()
            if "Default" in spec
        }
        self.values = (
            defaults | {"AWS::AccountId": "111122223333", "AWS::Partition": "aws"} | parameters
        )
        missing = set(self.template["Parameters"]) - set(self.values)
        assert not missing, f"give {missing}"
        self.conditions = {
            name: self.resolve(rule) for name, rule in self.template["Conditions"].items()
        }

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(item) for item in node) if v is not _NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            ((key, value),) = node.items()
            if key == "Ref":
                return _NO_VALUE if value == "AWS::NoValue" else self.values[value]
            if key == "Fn::Sub":
                return re.sub(r"\$\{([\w:]+)\}", lambda m: self.values[m[1]], value)
            if key == "Fn::If":
                name, yes, no = value
                return self.resolve(yes if self.conditions[name] else no)
            if key == "Fn::Equals":
                return self.resolve(value[0]) == self.resolve(value[1])
            if key == "Fn::Not":
                return not self.resolve(value[0])
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def role(self) -> dict[str, Any]:
        (role,) = [r for r in self.template["Resources"].values() if r["Type"] == "AWS::IAM::Role"]
        properties: dict[str, Any] = self.resolve(role["Properties"])
        return properties


def _file(relative: str) -> Any:
    return json.loads((ROOT / relative).read_text())


@pytest.mark.parametrize(
    ("parameters", "trust", "policy"),
    [
        (
            {"HubPrincipalArn": "arn:aws:iam::111111111111:root", "ExternalId": "collector-audit"},
            "docs/policies/member-role-trust.json",
            "docs/policies/member-role-policy.json",
        ),
        (
            {"HubPrincipalArn": "arn:aws:iam::111122223333:role/collector-hub"},
            "deploy/aws-batch/iam/member-role-trust.json",
            "deploy/aws-batch/iam/member-role-policy.json",
        ),
    ],
    ids=["external-id", "hub-role"],
)
def test_the_member_role_template_grants_what_the_policy_files_say(
    parameters: dict[str, str], trust: str, policy: str
) -> None:
    """The StackSet's role: trust and permissions equal the files, with and without an
    external id (the condition is there only when one is given)."""
    role = Stack(ROOT / "deploy" / "cloudformation" / "member-role.yaml", **parameters).role()
    assert role["RoleName"] == "collector-audit"
    assert role["AssumeRolePolicyDocument"] == _file(trust)
    (inline,) = role["Policies"]
    assert inline["PolicyDocument"] == _file(policy)


def test_the_hub_role_template_grants_what_the_policy_files_say() -> None:
    """The hub role: trust and permissions equal deploy/aws-batch/iam/hub-role-*.json for the
    files' bucket and prefix; a KMS key adds exactly its one statement."""
    template = ROOT / "deploy" / "cloudformation" / "hub-role.yaml"
    stack = Stack(template, OutputBucket="example-access-advisor", OutputPrefix="collector")
    role = stack.role()
    assert role["AssumeRolePolicyDocument"] == _file("deploy/aws-batch/iam/hub-role-trust.json")
    (inline,) = role["Policies"]
    assert inline["PolicyDocument"] == _file("deploy/aws-batch/iam/hub-role-policy.json")
    key = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
    with_kms = Stack(
        template, OutputBucket="example-access-advisor", OutputPrefix="collector", KmsKeyArn=key
    ).role()["Policies"][0]["PolicyDocument"]["Statement"]
    assert with_kms[:-1] == inline["PolicyDocument"]["Statement"]
    assert with_kms[-1] == {
        "Sid": "EncryptTheOutput",
        "Effect": "Allow",
        "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
        "Resource": key,
    }


def test_the_docs_member_policy_is_the_deployed_one() -> None:
    """docs/policies and deploy/aws-batch show the member role's permissions identically."""
    assert _file("docs/policies/member-role-policy.json") == _file(
        "deploy/aws-batch/iam/member-role-policy.json"
    )
