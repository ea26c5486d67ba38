"""What policy documents grant: namespaces and action patterns over the service catalog."""

from __future__ import annotations

import json
from typing import Any

from collector.emulator.catalog import SERVICES, TRACKED_ACTIONS
from collector.emulator.permissions import allowed_actions, document_grants, merge_grants


def _doc(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def test_catalog_has_real_services_with_display_names() -> None:
    """At least 100 services, including the well-known display names."""
    assert len(SERVICES) >= 100
    assert SERVICES["s3"] == "Amazon S3"
    assert SERVICES["ec2"] == "Amazon EC2"
    assert SERVICES["iam"] == "AWS Identity and Access Management"
    assert set(TRACKED_ACTIONS) == {"s3", "ec2", "iam", "lambda"}


def test_star_grants_every_catalog_service() -> None:
    """`*` expands over the whole catalog."""
    grants = document_grants(_doc({"Effect": "Allow", "Action": "*", "Resource": "*"}))
    assert set(grants) == set(SERVICES)


def test_prefixes_wildcards_and_unknown_services() -> None:
    """`svc:*`, `svc:Get*`, mixed case and wildcard prefixes count; unknown prefixes do not."""
    grants = document_grants(
        _doc(
            {"Effect": "Allow", "Action": ["s3:*", "EC2:Describe*", "nosuch:Thing"]},
            {"Effect": "Allow", "Action": "route53*:List*"},
        )
    )
    assert set(grants) == {"s3", "ec2", "route53", "route53domains", "route53resolver"}
    assert grants["ec2"] == {"describe*"}


def test_deny_is_ignored_and_not_action_excludes_whole_services() -> None:
    """Deny statements add nothing; Allow+NotAction grants all but fully excluded services."""
    grants = document_grants(
        _doc(
            {"Effect": "Deny", "Action": "kms:*"},
            {"Effect": "Allow", "NotAction": ["iam:*", "organizations:*", "s3:GetObject"]},
        )
    )
    assert "iam" not in grants and "organizations" not in grants
    assert {"s3", "kms"} <= set(grants)


def test_merge_and_tracked_action_matching() -> None:
    """Merged documents union their patterns; tracked actions match case-insensitively."""
    grants = merge_grants(
        [
            _doc({"Effect": "Allow", "Action": "iam:Create*"}),
            _doc({"Effect": "Allow", "Action": ["iam:deleteuser"]}),
            "not json",
        ]
    )
    assert allowed_actions(grants["iam"], TRACKED_ACTIONS["iam"]) == [
        "CreateAccessKey",
        "CreatePolicyVersion",
        "CreateRole",
        "CreateUser",
        "DeleteUser",
    ]


def test_not_action_leaves_its_actions_out_of_the_tracked_ones() -> None:
    """Allow+NotAction grants a service's tracked actions except those it names, as IAM does."""
    grants = document_grants(
        _doc({"Effect": "Allow", "NotAction": ["s3:CreateBucket", "s3:Delete*"], "Resource": "*"})
    )
    assert allowed_actions(grants["s3"], TRACKED_ACTIONS["s3"]) == [
        "PutBucketAcl",
        "PutBucketPolicy",
        "PutBucketPublicAccessBlock",
        "PutEncryptionConfiguration",
        "PutLifecycleConfiguration",
    ]
    # Another statement granting the whole service brings them back.
    merged = merge_grants(
        [_doc({"Effect": "Allow", "NotAction": "s3:CreateBucket"}),
         _doc({"Effect": "Allow", "Action": "s3:Create*"})]
    )  # fmt: skip
    assert "CreateBucket" in allowed_actions(merged["s3"], TRACKED_ACTIONS["s3"])
