"""GetAccountAuthorizationDetails: paged as IAM pages it, filtered, validated, URL-encoded, and
the seeded documents cover what real policies hold."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import boto3
from botocore.config import Config

from collector.emulator import Emulator, Faults
from collector.emulator.permissions import document_grants
from tests.support.emulator_clients import REGION, EmulatorFactory, boto3_client, raised

LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")


def _pages(iam: Any, **params: Any) -> list[dict[str, Any]]:
    pages, marker = [], None
    while True:
        page = iam.get_account_authorization_details(
            **params, **({"Marker": marker} if marker else {})
        )
        pages.append(page)
        if not page["IsTruncated"]:
            return pages
        marker = page["Marker"]


def _items(pages: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [item for page in pages for item in page[name]] for name in LISTS}


def test_pages_add_up_to_the_whole_account(emulator: Emulator) -> None:
    """MaxItems pages, each with a Marker while truncated, hold every item once, in order."""
    iam = boto3_client(emulator)
    whole = _pages(iam, MaxItems=1000)
    assert len(whole) == 1
    small = _pages(iam, MaxItems=7)
    assert len(small) > 5 and all(sum(len(p[n]) for n in LISTS) <= 7 for p in small)
    assert _items(small) == _items(whole)
    items = _items(whole)
    assert [u["Arn"] for u in items["UserDetailList"]] == sorted(
        u["Arn"] for u in iam.list_users()["Users"]
    )
    # boto3's own paginator (it follows Marker the same way) agrees.
    paginator = iam.get_paginator("get_account_authorization_details")
    assert _items(list(paginator.paginate(PaginationConfig={"PageSize": 11}))) == items


def test_short_pages_still_reach_the_end(emulator_with: EmulatorFactory) -> None:
    """With short pages, fewer items than MaxItems while IsTruncated is true: nothing is lost."""
    with emulator_with(principals=40, seed=11) as plain:
        expected = _items(_pages(boto3_client(plain), MaxItems=1000))
    with emulator_with(principals=40, seed=11, faults=Faults(short_page_max=5)) as short:
        pages = _pages(boto3_client(short), MaxItems=1000)
    assert len(pages) > 10
    got = _items(pages)
    # Dates are the seeding's; the rest is the same account.
    for name in LISTS:
        assert [i["Arn"] for i in got[name]] == [i["Arn"] for i in expected[name]]


def test_policies_are_customer_and_attached_aws_managed(emulator: Emulator) -> None:
    """Every customer-managed policy; AWS-managed only when attached, as IAM lists them."""
    iam = boto3_client(emulator)
    policies = _items(_pages(iam, MaxItems=1000))["Policies"]
    local = {p["Arn"] for p in iam.list_policies(Scope="Local")["Policies"]}
    attached = {p["Arn"] for p in iam.list_policies(Scope="AWS", OnlyAttached=True)["Policies"]}
    assert {p["Arn"] for p in policies} == local | attached
    assert all(p["AttachmentCount"] > 0 for p in policies if p["Arn"] in attached)
    for policy in policies:
        default = [v for v in policy["PolicyVersionList"] if v["IsDefaultVersion"]]
        assert [v["VersionId"] for v in default] == [policy["DefaultVersionId"]]


def test_filter_picks_the_lists(emulator: Emulator) -> None:
    """Filter=[Role, LocalManagedPolicy]: roles and customer-managed policies, nothing else."""
    iam = boto3_client(emulator)
    items = _items(_pages(iam, Filter=["Role", "LocalManagedPolicy"], MaxItems=1000))
    assert not items["UserDetailList"] and not items["GroupDetailList"]
    assert items["RoleDetailList"]
    assert all(":iam::aws:policy/" not in p["Arn"] for p in items["Policies"])


def test_documents_are_url_encoded_as_iam_sends_them(emulator: Emulator) -> None:
    """The raw XML carries RFC 3986-encoded documents; decoded, they are the policies' JSON."""
    iam = boto3.session.Session().client(
        "iam", endpoint_url=emulator.endpoint, region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}),
    )  # fmt: skip
    raw: list[bytes] = []
    iam.meta.events.register(
        "before-parse.iam.GetAccountAuthorizationDetails",
        lambda response_dict, **_: raw.append(response_dict["body"]),
    )
    page = iam.get_account_authorization_details(MaxItems=1000)
    body = raw[0].decode()
    assert "%7B%22Version%22" in body and '{"Version"' not in body
    # boto3 decodes them for its callers; our sweep switches that off and decodes itself.
    role = page["RoleDetailList"][0]
    assert isinstance(role["AssumeRolePolicyDocument"], dict)
    policy = page["Policies"][0]
    version = policy["PolicyVersionList"][0]["Document"]
    expected = iam.get_policy_version(
        PolicyArn=policy["Arn"], VersionId=policy["DefaultVersionId"]
    )["PolicyVersion"]["Document"]
    assert version == (json.loads(unquote(expected)) if isinstance(expected, str) else expected)


def test_invalid_requests_are_refused_as_iam_does(emulator: Emulator) -> None:
    """Out-of-model MaxItems and Filter values answer ValidationError; a foreign Marker too."""
    iam = boto3_client(emulator, parameter_validation=False)
    status, error = raised(iam.get_account_authorization_details, MaxItems=0)
    assert (status, error["Code"]) == (400, "ValidationError")
    assert "Member must have value greater than or equal to 1" in error["Message"]
    status, error = raised(iam.get_account_authorization_details, Filter=["Users"])
    assert (status, error["Code"]) == (400, "ValidationError")
    assert "Member must satisfy enum value set: [User, Role, Group" in error["Message"]
    status, error = raised(iam.get_account_authorization_details, Marker="bm90LW91cnM6NQ==")
    assert (status, error["Code"]) == (400, "InvalidInput")


def _statements(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for document in documents:
        statements = document["Statement"]
        found += statements if isinstance(statements, list) else [statements]
    return found


def test_seeded_documents_hold_what_real_policies_hold(emulator_with: EmulatorFactory) -> None:
    """Explicit actions, svc:*, *, prefixes, NotAction, Deny, conditions, several statements,
    inline policies; and every report lists exactly the services its documents allow."""
    with emulator_with(principals=200) as emu:
        iam = boto3_client(emu)
        items = _items(_pages(iam, MaxItems=1000))
        truth = emu.ground_truth(policy_documents=True)
    documents = [r["document"] for r in truth if r["record"] == "policy_document"]
    customer = [r["document"] for r in truth if r["record"] == "policy_document"
                and r["policy_arn"] and ":iam::aws:policy/" not in r["policy_arn"]]  # fmt: skip
    inline = [r for r in truth if r["record"] == "policy_document" and r["owner_arn"]]
    actions = [
        a
        for s in _statements(customer)
        for a in ([s["Action"]] if isinstance(s.get("Action"), str) else s.get("Action", []))
    ]
    statements = _statements(customer)
    assert "*" in actions
    assert any(a.endswith(":*") and a != "*" for a in actions)
    assert any(a.endswith(("Get*", "List*", "Describe*")) for a in actions)
    assert any(":" in a and not a.endswith("*") for a in actions)
    assert any(s["Effect"] == "Allow" and "NotAction" in s for s in statements)
    assert any(s["Effect"] == "Deny" for s in statements)
    assert any("Condition" in s for s in statements)
    assert any(len(d["Statement"]) > 2 for d in customer)
    assert {r["owner_arn"].split(":")[5].split("/")[0] for r in inline} == {"user", "group", "role"}
    assert len(documents) == len(items["Policies"]) + sum(
        len(i[k])
        for k, name in (
            ("UserPolicyList", "UserDetailList"),
            ("GroupPolicyList", "GroupDetailList"),
            ("RolePolicyList", "RoleDetailList"),
        )
        for i in items[name]
    )
    # A managed policy's own report lists the catalog services its document allows.
    services: dict[str, set[str]] = {}
    for record in truth:
        if record["record"] == "service":
            services.setdefault(record["principal_arn"], set()).add(record["service_namespace"])
    for record in truth:
        if record["record"] == "policy_document" and record["policy_arn"] in services:
            allowed = set(document_grants(json.dumps(record["document"])))
            assert services[record["policy_arn"]] == allowed, record["policy_name"]
