"""Paging through reports, with and without short pages, reassembles exactly the ground truth."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from collector.emulator import Faults
from tests.support.emulator_clients import (
    EmulatorFactory,
    aio_client,
    boto3_client,
    entity_record,
    of_kind,
    service_record,
)

# kind -> (list operation, list key, paginate params, name, id)
LISTS = {
    "user": ("list_users", "Users", {}, "UserName", "UserId"),
    "group": ("list_groups", "Groups", {}, "GroupName", "GroupId"),
    "role": ("list_roles", "Roles", {}, "RoleName", "RoleId"),
    "policy": ("list_policies", "Policies", {"Scope": "Local"}, "PolicyName", "PolicyId"),
}


async def _principals(iam: Any) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    for kind, (operation, key, params, name, ident) in LISTS.items():
        async for page in iam.get_paginator(operation).paginate(**params):
            found.extend(
                {
                    "arn": item["Arn"],
                    "kind": kind,
                    "name": item[name],
                    "id": item[ident],
                    "path": item["Path"],
                }
                for item in page[key]
            )
    return found


async def _pages(call: Any, key: str, stats: dict[str, int], **params: Any) -> list[Any]:
    items: list[Any] = []
    marker = None
    while True:
        page = await call(**params, **({"Marker": marker} if marker else {}))
        assert page["JobStatus"] == "COMPLETED"
        items.extend(page[key])
        stats["pages"] += 1
        if not page["IsTruncated"]:
            return items
        if len(page[key]) < params.get("MaxItems", 100):
            stats["short"] += 1
        marker = page["Marker"]


async def _sweep(emu: Any, max_items: int | None) -> tuple[list[dict[str, Any]], dict[str, int]]:
    records: list[dict[str, Any]] = []
    stats = {"pages": 0, "short": 0}
    sizing = {"MaxItems": max_items} if max_items else {}
    limiter = anyio.CapacityLimiter(8)
    async with aio_client(emu) as iam:
        principals = await _principals(iam)

        async def one(p: dict[str, str]) -> None:
            async with limiter:
                job = await iam.generate_service_last_accessed_details(
                    Arn=p["arn"], Granularity="ACTION_LEVEL"
                )
                services = await _pages(
                    iam.get_service_last_accessed_details,
                    "ServicesLastAccessed",
                    stats,
                    JobId=job["JobId"],
                    **sizing,
                )
                entities: list[dict[str, Any]] = []
                # Entities as the default "accessed" mode fetches them: group and
                # policy reports, namespaces someone used.
                wanted = p["kind"] in ("group", "policy")
                for item in services if wanted else ():
                    if "LastAuthenticated" not in item:
                        continue
                    namespace = item["ServiceNamespace"]
                    items = await _pages(
                        iam.get_service_last_accessed_details_with_entities,
                        "EntityDetailsList",
                        stats,
                        JobId=job["JobId"],
                        ServiceNamespace=namespace,
                        **sizing,
                    )
                    entities.extend(
                        entity_record(emu.account_id, p["arn"], p["kind"], namespace, entity)
                        for entity in items
                    )
            records.extend(
                service_record(emu.account_id, p["arn"], p["kind"], item) for item in services
            )
            records.extend(entities)
            records.append(
                {
                    "record": "principal",
                    "schema": 1,
                    "account_id": emu.account_id,
                    "principal_arn": p["arn"],
                    "principal_type": p["kind"],
                    "principal_name": p["name"],
                    "principal_id": p["id"],
                    "principal_path": p["path"],
                    "job_type": "ACTION_LEVEL",
                    "services": len(services),
                    "services_accessed": sum(1 for s in services if "LastAuthenticated" in s),
                    "entities": len(entities),
                }
            )

        async with anyio.create_task_group() as group:
            for principal in principals:
                group.start_soon(one, principal)
    return records, stats


def _key(record: dict[str, Any]) -> str:
    return repr(sorted(record.items()))


@pytest.mark.parametrize("max_items", [None, 1000])
async def test_short_pages_reassemble_the_ground_truth(
    emulator_with: EmulatorFactory, max_items: int | None
) -> None:
    """With pages of 1..7 items while IsTruncated is true, following Marker loses nothing."""
    with emulator_with(principals=30, faults=Faults(short_page_max=7)) as emu:
        with anyio.fail_after(40):
            records, stats = await _sweep(emu, max_items)
        truth = emu.ground_truth(granularity="ACTION_LEVEL", entities="accessed")
    assert stats["short"] > 10
    assert sorted(map(_key, records)) == sorted(map(_key, truth))
    assert len(of_kind(records, "principal")) == 30


async def test_max_items_pages_are_full(emulator_with: EmulatorFactory) -> None:
    """Without the knob every page but the last holds exactly MaxItems, and nothing is lost."""
    with emulator_with(principals=12) as emu:
        with anyio.fail_after(40):
            records, stats = await _sweep(emu, 3)
        truth = emu.ground_truth(granularity="ACTION_LEVEL", entities="accessed")
    assert stats["short"] == 0
    assert stats["pages"] > len(of_kind(truth, "principal")) * 2
    assert sorted(map(_key, records)) == sorted(map(_key, truth))


def test_marker_walks_services_in_max_items_steps(emulator_with: EmulatorFactory) -> None:
    """MaxItems=1 yields one service per page, an opaque Marker, and IsTruncated until the end."""
    with emulator_with(principals=8) as emu:
        iam = boto3_client(emu)
        arn = iam.list_roles()["Roles"][0]["Arn"]
        job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        full = iam.get_service_last_accessed_details(JobId=job_id, MaxItems=1000)[
            "ServicesLastAccessed"
        ]
        seen = []
        marker = None
        while True:
            page = iam.get_service_last_accessed_details(
                JobId=job_id, MaxItems=1, **({"Marker": marker} if marker else {})
            )
            assert len(page["ServicesLastAccessed"]) == 1
            seen.extend(page["ServicesLastAccessed"])
            if not page["IsTruncated"]:
                assert "Marker" not in page
                break
            marker = page["Marker"]
    assert len(full) > 1
    assert seen == full
