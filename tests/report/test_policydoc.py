"""Policy documents as data: what Allow statements grant, the rewrite, IAM's size limit."""

from __future__ import annotations

from typing import Any

from collector.report.policydoc import MAX_POLICY_CHARS, Usage, granted, rewrite, size, split

SERVICES = ("s3", "ec2", "sqs", "iam", "kms", "logs", "lambda")


def _doc(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


def test_granted_follows_allow_statements_only() -> None:
    """Action patterns (any case, wildcards), NotAction; Deny and conditions add nothing."""
    document = _doc(
        {"Effect": "Allow", "Action": ["S3:Get*", "l*:Invoke*"], "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    )  # fmt: skip
    assert granted(document, SERVICES) == {"s3", "logs", "lambda", "sqs"}
    power = _doc({"Effect": "Allow", "NotAction": ["iam:*", "s3:GetObject"], "Resource": "*"})
    assert granted(power, SERVICES) == set(SERVICES) - {"iam"}
    assert granted({"Statement": {"Effect": "Allow", "Action": "*"}}, SERVICES) == set(SERVICES)


def test_rewrite_by_hand() -> None:
    """Checked by hand: ec2 and kms unused, s3 and sqs used (s3 with ACTION_LEVEL rows).

    - statement 1 lists ec2:RunInstances (unused: goes), s3:GetObject (used: stays);
    - statement 2 is `*` under a condition: it covers unused services, so it becomes the used
      ones it covers: s3 through its two used tracked actions, sqs:* (no ACTION_LEVEL rows),
      and keeps its condition and resource;
    - statement 3 grants kms only: dropped;
    - the Deny and the NotAction statements stay exactly as they were.
    """
    usage = Usage(
        used=frozenset({"s3", "sqs"}),
        unused=frozenset({"ec2", "kms"}),
        used_actions={"s3": ("CreateBucket", "PutBucketPolicy")},
    )
    condition = {"StringEquals": {"aws:RequestedRegion": "eu-west-1"}}
    deny = {"Effect": "Deny", "Action": "ec2:TerminateInstances", "Resource": "*"}
    not_action = {"Effect": "Allow", "NotAction": "iam:*", "Resource": "arn:aws:s3:::logs/*"}
    document = _doc(
        {"Sid": "One", "Effect": "Allow", "Action": ["ec2:RunInstances", "s3:GetObject"],
         "Resource": "*"},
        {"Sid": "Two", "Effect": "Allow", "Action": "*", "Resource": "arn:aws:s3:::b/*",
         "Condition": condition},
        {"Sid": "Three", "Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"},
        deny,
        not_action,
    )  # fmt: skip
    assert rewrite(document, usage) == _doc(
        {"Sid": "One", "Effect": "Allow", "Action": "s3:GetObject", "Resource": "*"},
        {"Sid": "Two", "Effect": "Allow",
         "Action": ["s3:CreateBucket", "s3:PutBucketPolicy", "sqs:*"],
         "Resource": "arn:aws:s3:::b/*", "Condition": condition},
        deny,
        not_action,
    )  # fmt: skip


def test_wildcards_covering_nothing_unused_and_unknown_services_are_kept() -> None:
    """`s*:List*` over used services only, and services the report does not list, stay."""
    usage = Usage(used=frozenset({"s3", "sqs"}), unused=frozenset({"ec2"}))
    document = _doc(
        {"Effect": "Allow", "Action": ["s*:List*", "newsvc:Do", "ec2:*"], "Resource": "*"}
    )
    assert rewrite(document, usage)["Statement"] == [
        {"Effect": "Allow", "Action": ["s*:List*", "newsvc:Do"], "Resource": "*"}
    ]
    # A wildcard over an unused service keeps its action part on each used service it covers.
    narrowed = rewrite(_doc({"Effect": "Allow", "Action": "*:Describe*"}), usage)
    assert narrowed["Statement"] == [
        {"Effect": "Allow", "Action": ["s3:Describe*", "sqs:Describe*"]}
    ]


def test_size_ignores_whitespace_and_split_keeps_every_grant() -> None:
    """A document over 6,144 characters is cut into documents that each fit and grant the same."""
    actions = [f"ec2:DescribeThing{n:04d}" for n in range(400)]
    document = _doc(
        {"Sid": "Big", "Effect": "Allow", "Action": actions, "Resource": "*"},
        {"Effect": "Deny", "Action": "iam:*", "Resource": "*"},
    )
    assert size({"a": "b c"}) == len('{"a":"bc"}')
    assert size(document) > MAX_POLICY_CHARS
    parts = split(document)
    assert parts is not None and len(parts) >= 2
    assert all(size(part) <= MAX_POLICY_CHARS for part in parts)
    statements = [s for part in parts for s in part["Statement"]]
    assert [a for s in statements if s["Effect"] == "Allow" for a in s["Action"]] == actions
    assert [s["Sid"] for s in statements if "Sid" in s] == [
        f"BigPart{n}" for n in range(1, len(statements))
    ]
    assert statements[-1] == {"Effect": "Deny", "Action": "iam:*", "Resource": "*"}
    assert split(_doc({"Effect": "Allow", "Action": "s3:*"})) == [
        _doc({"Effect": "Allow", "Action": "s3:*"})
    ]


def test_a_notaction_statement_over_the_limit_cannot_be_split() -> None:
    """Cutting a NotAction list would change what it allows: no split at all."""
    big = [f"ec2:DescribeThing{n:04d}" for n in range(400)]
    assert split(_doc({"Effect": "Allow", "NotAction": big, "Resource": "*"})) is None
