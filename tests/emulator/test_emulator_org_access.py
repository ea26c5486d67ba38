"""The organizations access report operations against the emulated organisation."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, cast

import anyio
import botocore.session
import pytest
from botocore.model import ServiceModel, StringShape, StructureShape

from collector.emulator import Faults, Organization, OrgOptions, running_organization
from collector.emulator.faults import FaultInjector
from collector.emulator.orgaccess import SORT_KEYS, OrgAccessReports
from tests.support.emulator_clients import iso, raised
from tests.support.emulator_org_clients import OrgFactory, aio_client, assume, client

DENIED = ("athena", "s3")


@pytest.fixture
def org_with() -> OrgFactory:
    """Start an organisation with the given OrgOptions fields (a context manager)."""

    def start(**fields: Any) -> AbstractContextManager[Organization]:
        fields.setdefault("principals", 30)
        fields.setdefault("seed", 8)
        fields.setdefault("accounts", 6)
        return running_organization(OrgOptions(**fields))

    return start


@pytest.fixture
def org(org_with: OrgFactory) -> Iterator[Organization]:
    """Six accounts over two top-level OUs (one nested), an SCP denying two services in one."""
    with org_with(scp_denied=DENIED, suspended=1) as running:
        yield running


def _rows(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "service_namespace": item["ServiceNamespace"],
            "service_name": item["ServiceName"],
            "region": item.get("Region"),
            "entity_path": item.get("EntityPath"),
            "last_authenticated_time": iso(item.get("LastAuthenticatedTime")),
            "total_authenticated_entities": item.get("TotalAuthenticatedEntities"),
        }
        for item in details
    ]


def _wait(iam: Any, job_id: str, **params: Any) -> dict[str, Any]:
    for _ in range(200):
        answer: dict[str, Any] = iam.get_organizations_access_report(JobId=job_id, **params)
        if answer["JobStatus"] != "IN_PROGRESS":
            return answer
        time.sleep(0.05)
    raise AssertionError("report never completed")


def _all_pages(iam: Any, job_id: str, **params: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    first = _wait(iam, job_id, **params)
    details, page = list(first.get("AccessDetails", [])), first
    while page.get("IsTruncated"):
        page = iam.get_organizations_access_report(JobId=job_id, Marker=page["Marker"], **params)
        details += page["AccessDetails"]
    return first, details


def test_reports_equal_ground_truth_for_root_ous_and_accounts(org: Organization) -> None:
    """Every entity path's report, read in pages of 7, equals org_access_truth exactly."""
    iam = client(org, "iam")
    for path in org.layout.entity_paths():
        job_id = iam.generate_organizations_access_report(EntityPath=path)["JobId"]
        assert len(job_id) == 36
        first, details = _all_pages(iam, job_id, MaxItems=7)
        truth = org.org_access_truth(path)
        assert first["JobStatus"] == truth["status"] == "COMPLETED"
        assert first["NumberOfServicesAccessible"] == truth["services_accessible"]
        assert first["NumberOfServicesNotAccessed"] == truth["services_not_accessed"]
        assert _rows(details) == truth["access_details"], path
        assert first["JobCompletionDate"] >= first["JobCreationDate"]


def test_scps_shape_what_each_entity_lists(org: Organization) -> None:
    """The sandbox OU's deny SCP removes two services there and below; the root and the
    management account list the whole catalog; usage rolls up from member accounts only."""
    sandbox = next(u for u in org.units if u.name == "sandbox")
    root = org.org_access_truth(org.layout.root_path)
    under_sandbox = org.org_access_truth(sandbox.path)
    management = org.org_access_truth(org.account(org.management_account_id).path)
    listed = {row["service_namespace"] for row in root["access_details"]}
    assert set(DENIED) <= listed
    assert {row["service_namespace"] for row in under_sandbox["access_details"]} == listed - set(
        DENIED
    )
    assert management["services_accessible"] == root["services_accessible"]
    members = {a.path for a in org.accounts if not a.management}
    assert {r["entity_path"] for r in root["access_details"] if r["entity_path"]} <= members
    assert {r["target_type"] for r in (root, under_sandbox, management)} == {
        "ROOT",
        "ORGANIZATIONAL_UNIT",
        "ACCOUNT",
    }
    counts = [r["total_authenticated_entities"] for r in root["access_details"]]
    assert max(counts) > 1, "some services are used in several accounts"
    assert all(
        (r["last_authenticated_time"] is None) == (r["total_authenticated_entities"] == 0)
        for r in root["access_details"]
    )


def test_sort_keys_order_the_rows(org: Organization) -> None:
    """Each SortKey of the model orders the same rows as documented; never-used sort oldest."""
    iam = client(org, "iam")
    path = org.layout.root_path
    truth = org.org_access_truth(path)["access_details"]
    job_id = iam.generate_organizations_access_report(EntityPath=path)["JobId"]

    def stamp(row: dict[str, Any]) -> str:
        return row["last_authenticated_time"] or ""

    expected = {
        "SERVICE_NAMESPACE_ASCENDING": sorted(truth, key=lambda r: r["service_namespace"]),
        "SERVICE_NAMESPACE_DESCENDING": sorted(
            truth, key=lambda r: r["service_namespace"], reverse=True
        ),
        "LAST_AUTHENTICATED_TIME_ASCENDING": sorted(
            truth, key=lambda r: (stamp(r), r["service_namespace"])
        ),
        "LAST_AUTHENTICATED_TIME_DESCENDING": sorted(
            sorted(truth, key=lambda r: r["service_namespace"]), key=stamp, reverse=True
        ),
    }
    model = botocore.session.get_session().get_service_model("iam")
    # shape_for is typed as the base Shape; a string shape is botocore's StringShape.
    sort_keys = cast(StringShape, model.shape_for("sortKeyType"))
    assert list(expected) == sort_keys.enum == list(SORT_KEYS)
    for sort_key, rows in expected.items():
        _, details = _all_pages(iam, job_id, MaxItems=50, SortKey=sort_key)
        assert _rows(details) == rows, sort_key


def _raw(iam: Any, operation: str, **params: Any) -> ET.Element:
    captured: dict[str, bytes] = {}

    def keep(response_dict: dict[str, Any], **_: Any) -> None:
        captured["body"] = response_dict["body"]

    iam.meta.events.register(f"before-parse.iam.{operation}", keep)
    getattr(iam, _snake(operation))(**params)
    # The body is our own emulator's answer over loopback, not untrusted input.
    return ET.fromstring(captured["body"])  # noqa: S314


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _output_members(model: ServiceModel, operation: str) -> list[str]:
    shape = model.operation_model(operation).output_shape
    assert shape is not None, f"{operation} has no output"
    return list(shape.members)


def test_wire_elements_are_members_of_the_model(org: Organization) -> None:
    """Every XML element the two operations send is a member of botocore's iam output shape,
    in the model's order, and no element is empty."""
    model = botocore.session.get_session().get_service_model("iam")
    iam = client(org, "iam")
    generated = _raw(iam, "GenerateOrganizationsAccessReport", EntityPath=org.layout.root_path)
    result = generated[0]
    assert _local(result.tag) == "GenerateOrganizationsAccessReportResult"
    assert [_local(e.tag) for e in result] == _output_members(
        model, "GenerateOrganizationsAccessReport"
    )
    job_id = result[0].text
    assert job_id is not None
    _wait(iam, job_id)
    document = _raw(iam, "GetOrganizationsAccessReport", JobId=job_id, MaxItems=5)
    result = document[0]
    output = _output_members(model, "GetOrganizationsAccessReport")
    names = [_local(e.tag) for e in result]
    assert names == [name for name in output if name in names]
    assert {"JobStatus", "JobCreationDate", "AccessDetails", "IsTruncated", "Marker"} <= set(names)
    # shape_for is typed as the base Shape; a structure shape is botocore's StructureShape.
    detail = list(cast(StructureShape, model.shape_for("AccessDetail")).members)
    members = result.find("{*}AccessDetails")
    assert members is not None and len(members) == 5
    for member in members:
        fields = [_local(e.tag) for e in member]
        assert fields == [name for name in detail if name in fields]
        assert {"ServiceName", "ServiceNamespace"} <= set(fields)
    assert all(e.text for e in document.iter() if len(e) == 0)


def test_second_job_while_one_runs_is_409(org_with: OrgFactory) -> None:
    """While a report is IN_PROGRESS, another Generate answers ReportGenerationLimitExceeded."""
    with org_with(accounts=3, report_latency=600.0) as org:
        iam = client(org, "iam")
        job_id = iam.generate_organizations_access_report(EntityPath=org.layout.root_path)["JobId"]
        running = iam.get_organizations_access_report(JobId=job_id)
        assert running["JobStatus"] == "IN_PROGRESS"
        assert "JobCompletionDate" not in running and "AccessDetails" not in running
        status, error = raised(
            iam.generate_organizations_access_report, EntityPath=org.accounts[1].path
        )
        assert (status, error["Code"]) == (409, "ReportGenerationLimitExceeded")
        with pytest.raises(iam.exceptions.ReportGenerationLimitExceededException):
            iam.generate_organizations_access_report(EntityPath=org.layout.root_path)


def test_one_job_at_a_time_then_the_next(org: Organization) -> None:
    """On the jobs' own clock: 409 while the first job runs, accepted once it has ended."""
    now = [100.0]
    reports = OrgAccessReports(
        org.org_report,
        FaultInjector(Faults(), 0),
        seed=0,
        latency=5.0,
        failed_share=0.0,
        clock=lambda: now[0],
    )
    root = org.layout.root_path
    first = reports.handle("GenerateOrganizationsAccessReport", {"EntityPath": root})
    assert first.status == 200
    second = reports.handle("GenerateOrganizationsAccessReport", {"EntityPath": root})
    assert second.status == 409 and b"<Code>ReportGenerationLimitExceeded</Code>" in second.body
    now[0] += 5.0
    third = reports.handle("GenerateOrganizationsAccessReport", {"EntityPath": root})
    assert third.status == 200


async def test_aiobotocore_polls_a_slow_report_to_completion(org_with: OrgFactory) -> None:
    """aiobotocore polls an IN_PROGRESS report, then pages it: it equals the ground truth."""
    with org_with(accounts=4, report_latency=0.3) as org:
        path = org.layout.root_path
        with anyio.fail_after(60):
            async with aio_client(org, "iam") as iam:
                job = await iam.generate_organizations_access_report(EntityPath=path)
                polls = 0
                while True:
                    page = await iam.get_organizations_access_report(
                        JobId=job["JobId"], MaxItems=20
                    )
                    if page["JobStatus"] != "IN_PROGRESS":
                        break
                    polls += 1
                    await anyio.sleep(0.05)
                details = list(page["AccessDetails"])
                while page["IsTruncated"]:
                    page = await iam.get_organizations_access_report(
                        JobId=job["JobId"], MaxItems=20, Marker=page["Marker"]
                    )
                    details += page["AccessDetails"]
        assert page["JobStatus"] == "COMPLETED"
        assert _rows(details) == org.org_access_truth(path)["access_details"]


def test_failed_jobs_carry_error_details(org_with: OrgFactory) -> None:
    """With every report failing, Get answers FAILED with ErrorDetails{Message, Code}."""
    with org_with(accounts=3, report_failed_share=1.0) as org:
        iam = client(org, "iam")
        path = org.layout.root_path
        job_id = iam.generate_organizations_access_report(EntityPath=path)["JobId"]
        answer = _wait(iam, job_id)
        truth = org.org_access_truth(path)
        assert answer["JobStatus"] == truth["status"] == "FAILED"
        assert answer["ErrorDetails"]["Code"] == truth["error_code"] == "ServiceFailure"
        assert answer["ErrorDetails"]["Message"]
        assert "AccessDetails" not in answer and "JobCompletionDate" in answer


def test_invalid_input_is_rejected(org: Organization) -> None:
    """Malformed paths and sort keys answer ValidationError; well-formed paths naming nothing
    in the organisation InvalidInput; an unknown JobId NoSuchEntity."""
    iam = client(org, "iam")
    root = org.layout.root_path
    sandbox = next(u for u in org.units if u.name == "sandbox")
    prod = next(u for u in org.units if u.name == "prod")
    member = next(a for a in org.accounts if a.parent_id == prod.id)
    cases = [
        ({"EntityPath": "x" * 19}, 400, "ValidationError"),
        ({"EntityPath": "o-aaaaaaaaaa/r-zzzz"}, 400, "InvalidInput"),
        ({"EntityPath": root.replace(org.root_id, "r-zzzz")}, 400, "InvalidInput"),
        ({"EntityPath": f"{root}/ou-zzzz-zzzzzzzz"}, 400, "InvalidInput"),
        ({"EntityPath": f"{sandbox.path}/{member.id}"}, 400, "InvalidInput"),
        ({"EntityPath": f"{root}/{prod.id}"}, 400, "InvalidInput"),
        ({"EntityPath": root, "OrganizationsPolicyId": "bad"}, 400, "ValidationError"),
        ({"EntityPath": root, "OrganizationsPolicyId": "p-zzzzzzzz"}, 400, "InvalidInput"),
    ]
    for params, status, code in cases:
        got_status, error = raised(iam.generate_organizations_access_report, **params)
        assert (got_status, error["Code"]) == (status, code), params
        assert error["Message"]
    job_id = iam.generate_organizations_access_report(EntityPath=f"{root}/")["JobId"]
    _wait(iam, job_id)
    for params, status, code in [
        ({"JobId": job_id, "SortKey": "NEWEST_FIRST"}, 400, "ValidationError"),
        ({"JobId": job_id, "MaxItems": 1001}, 400, "ValidationError"),
        ({"JobId": job_id, "Marker": "bm90LWEtbWFya2Vy"}, 400, "InvalidInput"),
        ({"JobId": "0" * 36}, 404, "NoSuchEntity"),
    ]:
        got_status, error = raised(iam.get_organizations_access_report, **params)
        assert (got_status, error["Code"]) == (status, code), params


def test_policy_reports_follow_the_named_scp(org: Organization) -> None:
    """With OrganizationsPolicyId, the report lists what that SCP allows, over the accounts it
    applies to; the deny-only SCP allows nothing."""
    iam = client(org, "iam")
    organizations = client(org, "organizations")
    policies = {
        p["Name"]: p["Id"]
        for p in organizations.list_policies(Filter="SERVICE_CONTROL_POLICY")["Policies"]
    }
    sandbox = next(u for u in org.units if u.name == "sandbox")
    for path, policy_id in (
        (org.layout.root_path, policies["FullAWSAccess"]),
        (sandbox.path, policies["collector-emulator-deny"]),
    ):
        job_id = iam.generate_organizations_access_report(
            EntityPath=path, OrganizationsPolicyId=policy_id
        )["JobId"]
        first, details = _all_pages(iam, job_id, MaxItems=100)
        truth = org.org_access_truth(path, policy_id)
        assert _rows(details) == truth["access_details"]
        assert first["NumberOfServicesAccessible"] == truth["services_accessible"]
    assert (
        org.org_access_truth(sandbox.path, policies["collector-emulator-deny"])[
            "services_accessible"
        ]
        == 0
    )


def test_member_accounts_cannot_generate(org: Organization) -> None:
    """Only the management account may call the two operations: a member gets AccessDenied."""
    member = next(a for a in org.accounts if a.audit_role and a.state == "ACTIVE")
    iam = client(org, "iam", assume(org, member.id))
    status, error = raised(iam.generate_organizations_access_report, EntityPath=member.path)
    assert (status, error["Code"]) == (403, "AccessDenied")
