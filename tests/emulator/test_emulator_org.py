"""The emulated organisation: its layout, AssumeRole as AWS enforces it, per-account serving."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from aiobotocore.credentials import AioRefreshableCredentials
from aiobotocore.session import AioSession

from collector.emulator import (
    EmulatorOptions,
    Faults,
    Organization,
    OrgOptions,
    running_emulator,
    running_organization,
)
from collector.emulator.organization import plan
from tests.support.emulator_clients import of_kind, raised, service_record
from tests.support.emulator_org_clients import OrgFactory, aio_client, assume, client


@pytest.fixture
def org_with() -> OrgFactory:
    """Start an organisation with the given OrgOptions fields (a context manager)."""

    def start(**fields: Any) -> AbstractContextManager[Organization]:
        fields.setdefault("principals", 20)
        fields.setdefault("seed", 5)
        return running_organization(OrgOptions(**fields))

    return start


@pytest.fixture
def org(org_with: OrgFactory) -> Iterator[Organization]:
    """Six accounts: management, three reachable members, one without the role, one suspended."""
    with org_with(accounts=6, suspended=1, without_role=1) as running:
        yield running


def _denied(org: Organization, caller_arn: str, account_id: str) -> str:
    return (
        f"User: {caller_arn} is not authorized to perform: sts:AssumeRole on resource: "
        f"{org.role_arn(account_id)}"
    )


def _management_arn(org: Organization) -> str:
    return f"arn:aws:iam::{org.management_account_id}:user/collector"


def _member(org: Organization, *, state: str = "ACTIVE", role: bool = True) -> str:
    return next(
        a.id for a in org.accounts if not a.management and a.state == state and a.audit_role == role
    )


def test_list_accounts_matches_the_layout(org: Organization) -> None:
    """ListAccounts (followed page by page) names every account with its name, email, state."""
    organizations = client(org, "organizations")
    listed = [
        account
        for page in organizations.get_paginator("list_accounts").paginate(
            PaginationConfig={"PageSize": 2}
        )
        for account in page["Accounts"]
    ]
    assert [(a["Id"], a["Name"], a["Email"], a["State"]) for a in listed] == [
        (a.id, a.name, a.email, a.state) for a in org.accounts
    ]
    assert [a.state for a in org.accounts].count("SUSPENDED") == 1
    # Status was retired on 2026-09-09: State only, plus the account's Paths.
    assert all("Status" not in a for a in listed)
    assert [a["Paths"] for a in listed] == [[f"{a.path}/"] for a in org.accounts]
    suspended = next(a for a in org.accounts if a.state == "SUSPENDED")
    described = organizations.describe_account(AccountId=suspended.id)["Account"]
    assert described["State"] == "SUSPENDED" and "Status" not in described
    under = organizations.list_accounts_for_parent(ParentId=suspended.parent_id)["Accounts"]
    assert suspended.id in {a["Id"] for a in under}
    assert all("Status" not in a and a["State"] for a in under)
    described = organizations.describe_organization()["Organization"]
    assert described["Id"] == org.organization_id
    assert described["MasterAccountId"] == org.management_account_id
    assert organizations.list_roots()["Roots"][0]["Id"] == org.root_id


def test_ou_tree_matches_the_layout(org: Organization) -> None:
    """Walking the OUs recursively finds each account under its parent, and a nested OU."""
    organizations = client(org, "organizations")
    parents: dict[str, str] = {}
    units: dict[str, str | None] = {org.root_id: None}
    pending = [org.root_id]
    while pending:
        parent = pending.pop()
        for account in organizations.list_accounts_for_parent(ParentId=parent)["Accounts"]:
            parents[account["Id"]] = parent
        for unit in organizations.list_organizational_units_for_parent(ParentId=parent)[
            "OrganizationalUnits"
        ]:
            units[unit["Id"]] = parent
            pending.append(unit["Id"])
    assert parents == {a.id: a.parent_id for a in org.accounts}
    assert units == {u.id: u.parent_id for u in org.units}
    assert len(org.units) - 1 >= 2
    nested = [u for u in org.units if u.parent_id not in (None, org.root_id)]
    assert nested, "at least one OU sits inside another"
    for account in org.accounts:
        unit = org.layout.unit(account.parent_id)
        assert unit is not None and account.path == f"{unit.path}/{account.id}"


def test_ids_are_stable_for_a_seed() -> None:
    """The same seed gives the same organisation, account and OU ids; another seed does not."""
    first, again, other = (plan(OrgOptions(accounts=8, seed=s)) for s in (1, 1, 2))
    assert first == again
    assert {a.id for a in first.accounts}.isdisjoint({a.id for a in other.accounts})
    assert first.organization_id != other.organization_id
    assert all(len(a.id) == 12 and a.id.isdigit() for a in first.accounts)


def test_assumed_role_requests_are_served_by_the_member_account(org: Organization) -> None:
    """The audit role's credentials sign as the member account and list that account's IAM."""
    member = _member(org)
    credentials = assume(org, member, RoleSessionName="collector-run-1")
    identity = client(org, "sts", credentials).get_caller_identity()
    assert identity["Account"] == member
    assert identity["Arn"] == f"arn:aws:sts::{member}:assumed-role/collector-audit/collector-run-1"
    roles = client(org, "iam", credentials).list_roles(MaxItems=1000)["Roles"]
    truth_roles = {
        r["principal_arn"]
        for r in of_kind(org.ground_truth(member), "principal")
        if r["principal_type"] == "role"
    }
    assert {r["Arn"] for r in roles} == truth_roles
    assert org.role_arn(member) in truth_roles
    management_roles = client(org, "iam").list_roles(MaxItems=1000)["Roles"]
    assert {r["Arn"].split(":")[4] for r in management_roles} == {org.management_account_id}


def test_missing_role_and_suspended_account_are_denied(org: Organization) -> None:
    """No audit role, or a SUSPENDED account (role and all): AccessDenied 403 in AWS's words."""
    sts = client(org, "sts")
    for account_id in (_member(org, role=False), _member(org, state="SUSPENDED")):
        status, error = raised(
            sts.assume_role, RoleArn=org.role_arn(account_id), RoleSessionName="collector-test"
        )
        assert status == 403
        assert error["Code"] == "AccessDenied"
        assert error["Message"] == _denied(org, _management_arn(org), account_id)


def test_pending_closure_account_is_denied(org_with: OrgFactory) -> None:
    """An account PENDING_CLOSURE keeps its role but AssumeRole into it is denied."""
    with org_with(accounts=3, pending_closure=1) as org:
        closing = next(a for a in org.accounts if a.state == "PENDING_CLOSURE")
        assert closing.audit_role
        status, error = raised(
            client(org, "sts").assume_role,
            RoleArn=org.role_arn(closing.id),
            RoleSessionName="collector-test",
        )
        assert (status, error["Code"]) == (403, "AccessDenied")


def test_trust_names_only_the_management_account(org: Organization) -> None:
    """A member's session cannot hop into another member: the trust names the management one."""
    first, second = [a.id for a in org.accounts if a.audit_role][:2]
    credentials = assume(org, first, RoleSessionName="hop")
    status, error = raised(
        client(org, "sts", credentials).assume_role,
        RoleArn=org.role_arn(second),
        RoleSessionName="collector-test",
    )
    assert status == 403
    caller = f"arn:aws:sts::{first}:assumed-role/collector-audit/hop"
    assert error["Message"] == _denied(org, caller, second)


def test_external_id_is_required_when_the_trust_demands_it(org_with: OrgFactory) -> None:
    """Missing or wrong sts:ExternalId is denied; the right one is granted."""
    with org_with(accounts=2, external_id="s3cret-id") as org:
        member = org.accounts[1].id
        sts = client(org, "sts")
        for extra in ({}, {"ExternalId": "wrong-id"}):
            status, error = raised(
                sts.assume_role,
                RoleArn=org.role_arn(member),
                RoleSessionName="collector-test",
                **extra,
            )
            assert (status, error["Code"]) == (403, "AccessDenied")
        credentials = assume(org, member, ExternalId="s3cret-id")
        assert client(org, "sts", credentials).get_caller_identity()["Account"] == member


def test_duration_beyond_the_role_maximum_is_rejected(org: Organization) -> None:
    """DurationSeconds above the role's MaxSessionDuration: ValidationError 400."""
    status, error = raised(
        client(org, "sts").assume_role,
        RoleArn=org.role_arn(_member(org)),
        RoleSessionName="collector-test",
        DurationSeconds=7200,
    )
    assert (status, error["Code"]) == (400, "ValidationError")
    assert "MaxSessionDuration" in error["Message"]


def test_member_credentials_cannot_list_the_organisation(org: Organization) -> None:
    """Organizations calls from a member account: AccessDeniedException, as AWS answers them."""
    credentials = assume(org, _member(org))
    organizations = client(org, "organizations", credentials)
    status, error = raised(organizations.list_accounts)
    assert (status, error["Code"]) == (400, "AccessDeniedException")
    assert organizations.describe_organization()["Organization"]["Id"] == org.organization_id


async def _report(iam: Any, arn: str) -> tuple[str, list[dict[str, Any]]]:
    job_id = (await iam.generate_service_last_accessed_details(Arn=arn))["JobId"]
    services: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    while True:
        page = await iam.get_service_last_accessed_details(JobId=job_id, MaxItems=50, **marker)
        if page["JobStatus"] == "IN_PROGRESS":
            await anyio.sleep(0.02)
            continue
        services += page["ServicesLastAccessed"]
        if not page["IsTruncated"]:
            return job_id, services
        marker = {"Marker": page["Marker"]}


async def test_access_advisor_answers_from_each_members_account(org: Organization) -> None:
    """aiobotocore with each member's assumed credentials: reports equal that account's ground
    truth, and a JobId of one account is unknown in another (each has its own job store)."""
    members = [a.id for a in org.accounts if a.audit_role][:2]
    jobs: dict[str, str] = {}
    with anyio.fail_after(60):
        for member in members:
            truth = org.ground_truth(member)
            principals = of_kind(truth, "principal")
            picked = [p for p in principals if p["services_accessed"]][:3]
            async with aio_client(org, "iam", assume(org, member)) as iam:
                for principal in picked:
                    arn = principal["principal_arn"]
                    job_id, services = await _report(iam, arn)
                    jobs[member] = job_id
                    got = [
                        service_record(member, arn, principal["principal_type"], s)
                        for s in services
                    ]
                    expected = [r for r in of_kind(truth, "service") if r["principal_arn"] == arn]
                    assert got == expected
        first, second = members
        async with aio_client(org, "iam", assume(org, second)) as iam:
            with pytest.raises(iam.exceptions.NoSuchEntityException):
                await iam.get_service_last_accessed_details(JobId=jobs[first])


def test_accounts_get_distinct_seeded_iam(org: Organization) -> None:
    """Each account has its own seeded IAM: principals named alike, ARNs in their own account."""
    reachable = [a.id for a in org.accounts if a.state == "ACTIVE"]
    truths = {account_id: org.ground_truth(account_id) for account_id in reachable}
    for account_id, truth in truths.items():
        assert truth and {r["account_id"] for r in truth} == {account_id}
        assert all(f":{account_id}:" in r["principal_arn"] for r in truth)
    shapes = {
        tuple(sorted(r["principal_name"] for r in of_kind(t, "principal"))) for t in truths.values()
    }
    assert len(shapes) > 1, "accounts are seeded differently"


def test_an_organisation_and_a_single_account_emulator_coexist() -> None:
    """A single-account emulator on the default account runs beside an organisation."""
    with (
        running_organization(OrgOptions(accounts=2, principals=5, seed=9)) as org,
        running_emulator(EmulatorOptions(principals=5)) as single,
    ):
        assert single.account_id not in {a.id for a in org.accounts}
        assert client(org, "sts").get_caller_identity()["Account"] == org.management_account_id
    with running_organization(OrgOptions(accounts=2, principals=5, seed=9)) as again:
        assert again.ground_truth(again.accounts[1].id)


def test_a_job_is_readable_only_by_the_session_that_made_it(org: Organization) -> None:
    """A second session of the same role (as after a credential refresh) gets NoSuchEntity for
    the first session's JobId; the first session reads it, and a new job works for the second."""
    member = _member(org)
    first = client(org, "iam", assume(org, member, RoleSessionName="before-refresh"))
    second = client(org, "iam", assume(org, member, RoleSessionName="after-refresh"))
    arn = org.role_arn(member)
    job_id = first.generate_service_last_accessed_details(Arn=arn)["JobId"]
    status, error = raised(second.get_service_last_accessed_details, JobId=job_id)
    assert (status, error["Code"]) == (404, "NoSuchEntity")
    status, error = raised(
        second.get_service_last_accessed_details_with_entities,
        JobId=job_id,
        ServiceNamespace="iam",
    )
    assert (status, error["Code"]) == (404, "NoSuchEntity")
    assert first.get_service_last_accessed_details(JobId=job_id)["JobStatus"] == "COMPLETED"
    again = second.generate_service_last_accessed_details(Arn=arn)["JobId"]
    assert second.get_service_last_accessed_details(JobId=again)["JobStatus"] == "COMPLETED"


def test_access_denied_knob_covers_organizations_operations(org_with: OrgFactory) -> None:
    """`access_denied={"ListAccounts"}`: the management caller cannot list the organisation."""
    with org_with(accounts=2, faults=Faults(access_denied=frozenset({"ListAccounts"}))) as org:
        organizations = client(org, "organizations")
        status, error = raised(organizations.list_accounts)
        assert (status, error["Code"]) == (400, "AccessDeniedException")
        assert organizations.list_roots()["Roots"][0]["Id"] == org.root_id


async def test_aiobotocore_refreshable_credentials_from_a_role_profile(
    org_with: OrgFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A config profile with role_arn + source_profile + external_id (AWS_ENDPOINT_URL pointing
    at the emulator) gives aiobotocore refreshable credentials of the member account."""
    with org_with(accounts=2, external_id="ext-42") as org:
        member = org.accounts[1].id
        (tmp_path / "org-config").write_text(
            "[default]\nregion = us-east-1\n"
            f"[profile member]\nrole_arn = {org.role_arn(member)}\nsource_profile = default\n"
            "external_id = ext-42\nrole_session_name = collector-run\nduration_seconds = 900\n"
        )
        (tmp_path / "org-credentials").write_text(
            "[default]\naws_access_key_id = testing\naws_secret_access_key = testing\n"
        )
        monkeypatch.delenv("AWS_ACCESS_KEY_ID")
        monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "org-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "org-credentials"))
        monkeypatch.setenv("AWS_ENDPOINT_URL", org.endpoint)
        session = AioSession(profile="member")
        with anyio.fail_after(30):
            credentials = await session.get_credentials()
            assert isinstance(credentials, AioRefreshableCredentials)
            async with session.create_client("sts", region_name="us-east-1") as sts:
                identity = await sts.get_caller_identity()
            async with session.create_client("iam", region_name="us-east-1") as iam:
                roles = await iam.list_roles(MaxItems=1000)
        assert (
            identity["Arn"] == f"arn:aws:sts::{member}:assumed-role/collector-audit/collector-run"
        )
        assert org.role_arn(member) in {role["Arn"] for role in roles["Roles"]}


def test_list_accounts_pages_by_twenty_by_default(org_with: OrgFactory) -> None:
    """Without MaxResults, ListAccounts answers 20 accounts and a NextToken, as AWS does."""
    with org_with(accounts=25, principals=2) as org:
        organizations = client(org, "organizations")
        first = organizations.list_accounts()
        assert len(first["Accounts"]) == 20 and first["NextToken"]
        pages = list(organizations.get_paginator("list_accounts").paginate())
        assert [len(page["Accounts"]) for page in pages] == [20, 5]
        listed = [a["Id"] for page in pages for a in page["Accounts"]]
        assert listed == [a.id for a in org.accounts]
        under_root = organizations.list_accounts_for_parent(ParentId=org.root_id)
        assert len(under_root["Accounts"]) <= 20


def _raw_assume_role(org: Organization, account_id: str) -> tuple[int, str, bytes]:
    """AssumeRole's status, content type and body as the server sent them (unparsed)."""
    sts = client(org, "sts")
    seen: dict[str, Any] = {}

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        seen.update(response_dict)

    sts.meta.events.register("before-parse.sts.AssumeRole", keep)
    # Parsing a malformed answer fails (that is what is tested); the body was kept first.
    with contextlib.suppress(Exception):
        sts.assume_role(RoleArn=org.role_arn(account_id), RoleSessionName="collector-test")
    return seen["status_code"], seen["headers"].get("Content-Type", ""), seen["body"]


def test_member_faults_break_assume_role_answers(org_with: OrgFactory) -> None:
    """`member_faults` number members from 1: AssumeRole into each faulty one answers 200 with an
    empty body, an HTML page, an Expiration that is no timestamp, or one an hour past."""
    faults = (
        (1, "assume-empty"),
        (2, "assume-html"),
        (3, "assume-bad-expiry"),
        (4, "assume-expired"),
    )
    with org_with(accounts=6, member_faults=faults) as org:
        members = [a for a in org.accounts if not a.management]
        assert [m.fault for m in members] == ["assume-empty", "assume-html", "assume-bad-expiry",
                                              "assume-expired", None]  # fmt: skip
        assert _raw_assume_role(org, members[0].id) == (200, "text/xml", b"")
        status, kind, html = _raw_assume_role(org, members[1].id)
        assert (status, kind) == (200, "text/html; charset=utf-8") and html.startswith(b"<!DOCTYPE")
        _, _, bad = _raw_assume_role(org, members[2].id)
        assert b"<Expiration>in an hour or so</Expiration>" in bad
        expired = assume(org, members[3].id)["Expiration"]
        assert expired < datetime.now(UTC) - timedelta(minutes=59)  # type: ignore[operator]
        fine = assume(org, members[4].id)["Expiration"]
        assert fine > datetime.now(UTC) + timedelta(minutes=59)  # type: ignore[operator]
        assert org.assume_role_calls(members[0].id) == 1
        assert org.assume_role_calls(members[4].id) == 1


def test_member_faults_of_iam_and_of_refresh(org_with: OrgFactory) -> None:
    """`no-permissions`: the role is assumed but every IAM call is AccessDenied (its identity
    still answers); `iam-5xx`: every IAM call 500/503; `refresh-denied`: the second AssumeRole
    is denied. `session_seconds` cuts every grant's lifetime."""
    faults = ((1, "no-permissions"), (2, "iam-5xx"), (3, "refresh-denied"))
    with org_with(accounts=4, member_faults=faults, session_seconds=30) as org:
        bare, failing, once = (a.id for a in org.accounts[1:])
        credentials = assume(org, bare)
        assert client(org, "sts", credentials).get_caller_identity()["Account"] == bare
        status, error = raised(client(org, "iam", credentials).list_users)
        assert (status, error["Code"]) == (403, "AccessDenied")
        assert "iam:ListUsers because no identity-based policy allows" in error["Message"]
        status, error = raised(client(org, "iam", assume(org, failing)).list_roles)
        assert status in (500, 503)
        first = assume(org, once)
        assert first["Expiration"] < datetime.now(UTC) + timedelta(seconds=31)  # type: ignore[operator]
        assert client(org, "iam", first).list_users()["Users"]
        status, error = raised(
            client(org, "sts").assume_role, RoleArn=org.role_arn(once), RoleSessionName="again"
        )
        assert (status, error["Code"]) == (403, "AccessDenied")
        assert org.assume_role_calls(once) == 2


def test_member_fault_options_are_checked() -> None:
    """A member number outside the members, an unknown fault, or a member given two: ValueError."""
    for faults in (((0, "iam-5xx"),), ((3, "iam-5xx"),), ((1, "nope"),),
                   ((1, "iam-5xx"), (1, "assume-html"))):  # fmt: skip
        with pytest.raises(ValueError, match="member"):
            OrgOptions(accounts=3, member_faults=faults)
