"""ListUsers, ListGroups, ListRoles and ListPolicies page as IAM pages them."""

from __future__ import annotations

import base64
from typing import Any

import anyio
import pytest

from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from collector.emulator.account import AWS_MANAGED_ATTACHED
from tests.support.emulator_clients import (
    EmulatorFactory,
    aio_client,
    boto3_client,
    of_kind,
    raised,
)

# List operation -> (boto3 method, items key, name key, principal_type, params)
LISTS = {
    "ListUsers": ("list_users", "Users", "UserName", "user", {}),
    "ListGroups": ("list_groups", "Groups", "GroupName", "group", {}),
    "ListRoles": ("list_roles", "Roles", "RoleName", "role", {}),
    "ListPolicies": ("list_policies", "Policies", "PolicyName", "policy", {"Scope": "Local"}),
}


def _walk(call: Any, key: str, **params: Any) -> tuple[list[dict[str, Any]], list[int]]:
    """Every item of a List call by following Marker by hand, and the size of each page."""
    items: list[dict[str, Any]] = []
    sizes: list[int] = []
    marker = None
    while True:
        page = call(**params, **({"Marker": marker} if marker else {}))
        items.extend(page[key])
        sizes.append(len(page[key]))
        if not page["IsTruncated"]:
            assert "Marker" not in page
            return items, sizes
        marker = page["Marker"]


def _names(truth: list[dict[str, Any]], kind: str, prefix: str = "/") -> set[str]:
    return {
        r["principal_name"]
        for r in of_kind(truth, "principal")
        if r["principal_type"] == kind and r["principal_path"].startswith(prefix)
    }


@pytest.fixture(scope="module")
def big() -> Any:
    """300 principals: 135 users, more than one default page of 100."""
    with running_emulator(
        EmulatorOptions(principals=300, seed=5, account_id="300000000003")
    ) as emu:
        yield emu


@pytest.mark.parametrize("operation", list(LISTS))
def test_max_items_and_marker_walk_every_list(big: Emulator, operation: str) -> None:
    """MaxItems=7 gives pages of exactly 7 but the last; following Marker yields each item once."""
    method, key, name, kind, params = LISTS[operation]
    iam = boto3_client(big)
    items, sizes = _walk(getattr(iam, method), key, MaxItems=7, **params)
    names = [item[name] for item in items]
    assert sizes[:-1] == [7] * (len(sizes) - 1) and 1 <= sizes[-1] <= 7
    assert len(names) == len(set(names))
    assert set(names) == _names(big.ground_truth(), kind)
    assert len(sizes) > 2


def test_default_page_is_one_hundred(big: Emulator) -> None:
    """Without MaxItems a page holds 100 items, as on IAM, and says there is more."""
    iam = boto3_client(big)
    first = iam.list_users()
    rest = iam.list_users(Marker=first["Marker"])
    assert big.layout.users == 135
    assert len(first["Users"]) == 100 and first["IsTruncated"] is True
    assert len(rest["Users"]) == 35 and rest["IsTruncated"] is False and "Marker" not in rest


def test_boto3_paginators_reassemble_everything(big: Emulator) -> None:
    """botocore's paginators, with small pages, reassemble each list exactly."""
    iam = boto3_client(big)
    truth = big.ground_truth()
    for method, key, name, kind, params in LISTS.values():
        pages = iam.get_paginator(method).paginate(**params, PaginationConfig={"PageSize": 9})
        names = [item[name] for page in pages for item in page[key]]
        assert sorted(names) == sorted(_names(truth, kind))


@pytest.mark.parametrize("prefix", ["/", "/platform/", "/org/", "/org/data/", "/nothing/"])
def test_list_groups_honours_path_prefix(big: Emulator, prefix: str) -> None:
    """ListGroups returns exactly the groups whose path starts with PathPrefix (so do the rest)."""
    iam = boto3_client(big)
    truth = big.ground_truth()
    for method, key, name, kind, params in LISTS.values():
        items, _ = _walk(getattr(iam, method), key, PathPrefix=prefix, MaxItems=5, **params)
        assert {item[name] for item in items} == _names(truth, kind, prefix)
        assert all(item["Path"].startswith(prefix) for item in items)
    if prefix == "/nothing/":
        assert not iam.list_groups(PathPrefix=prefix)["Groups"]


def test_list_groups_path_prefix_filters(big: Emulator) -> None:
    """A group's own path as PathPrefix lists that group and not the groups at the root."""
    iam = boto3_client(big)
    truth = big.ground_truth()
    nested = sorted(
        r["principal_path"]
        for r in of_kind(truth, "principal")
        if r["principal_type"] == "group" and r["principal_path"] != "/"
    )
    groups = iam.list_groups(PathPrefix=nested[0], MaxItems=1000)["Groups"]
    assert {g["GroupName"] for g in groups} == _names(truth, "group", nested[0])
    assert 0 < len(groups) < len(_names(truth, "group"))


async def test_short_pages_apply_to_list_calls(emulator_with: EmulatorFactory) -> None:
    """With short_page_max=3 List pages hold 1..3 items with IsTruncated true; nothing is lost."""
    with emulator_with(principals=120, faults=Faults(short_page_max=3)) as emu:
        truth = emu.ground_truth()
        with anyio.fail_after(60):
            async with aio_client(emu) as iam:
                for method, key, name, kind, params in LISTS.values():
                    sizes: list[int] = []
                    names: list[str] = []
                    paginator = iam.get_paginator(method)
                    async for page in paginator.paginate(**params):
                        sizes.append(len(page[key]))
                        names.extend(item[name] for item in page[key])
                    assert max(sizes) <= 3 and len(sizes) > 1
                    assert sorted(names) == sorted(_names(truth, kind))


def _marker(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


@pytest.mark.parametrize("operation", list(LISTS))
@pytest.mark.parametrize(
    "marker",
    ["garbage", "bm90IGEgbWFya2Vy", _marker("ListSomethingElse:3"), _marker("{op}:0"), "===="],
)
def test_garbage_marker_is_invalid_input(emulator: Emulator, operation: str, marker: str) -> None:
    """A Marker the emulator never handed out (or another List call's) is InvalidInput 400."""
    method, _, _, _, params = LISTS[operation]
    iam = boto3_client(emulator)
    marker = marker if "{op}" not in marker else _marker(f"{operation}:0")
    status, error = raised(getattr(iam, method), Marker=marker, **params)
    assert (status, error["Code"], error["Type"]) == (400, "InvalidInput", "Sender")


def test_marker_of_another_list_is_invalid_input(emulator: Emulator) -> None:
    """ListUsers' Marker is no Marker for ListRoles."""
    iam = boto3_client(emulator)
    marker = iam.list_users(MaxItems=1)["Marker"]
    assert raised(iam.list_roles, Marker=marker)[1]["Code"] == "InvalidInput"
    assert iam.list_users(Marker=marker)["Users"]


def test_list_policies_max_items_equal_to_total_has_no_extra_page(emulator: Emulator) -> None:
    """MaxItems equal to the number of policies: one page, IsTruncated false, no Marker."""
    iam = boto3_client(emulator)
    total = emulator.layout.policies
    page = iam.list_policies(Scope="Local", MaxItems=total)
    shorter = iam.list_policies(Scope="Local", MaxItems=total - 1)
    assert len(page["Policies"]) == total
    assert page["IsTruncated"] is False and "Marker" not in page
    assert shorter["IsTruncated"] is True and "Marker" in shorter


@pytest.mark.parametrize(
    ("method", "params", "member"),
    [
        ("list_policies", {"Scope": "Bogus"}, "'scope'"),
        ("list_policies", {"MaxItems": 0}, "'maxItems'"),
        ("list_users", {"MaxItems": -1}, "'maxItems'"),
        ("list_groups", {"MaxItems": 1001}, "'maxItems'"),
        ("list_roles", {"PathPrefix": "no-slash"}, "'pathPrefix'"),
        ("list_users", {"Marker": ""}, "'marker'"),
    ],
)
def test_list_parameters_outside_the_model_are_invalid_input(
    emulator: Emulator, method: str, params: dict[str, Any], member: str
) -> None:
    """Scope=Bogus, MaxItems 0/-1/1001, a bad PathPrefix: InvalidInput 400 in IAM's words."""
    iam = boto3_client(emulator, parameter_validation=False)
    status, error = raised(getattr(iam, method), **params)
    assert (status, error["Code"]) == (400, "InvalidInput")
    assert error["Message"].startswith("1 validation error detected: Value ")
    assert f"at {member} failed to satisfy constraint: Member must" in error["Message"]


def _raw_bodies(iam: Any) -> list[bytes]:
    bodies: list[bytes] = []
    iam.meta.events.register(
        "after-call.iam.*", lambda http_response, **_: bodies.append(http_response.content)
    )
    return bodies


def test_wire_format_has_is_truncated_always_and_marker_only_when_truncated(
    emulator: Emulator,
) -> None:
    """The XML holds <IsTruncated> on every page and <Marker> only on truncated ones."""
    iam = boto3_client(emulator)
    bodies = _raw_bodies(iam)
    for method, key, _, _, params in LISTS.values():
        _walk(getattr(iam, method), key, MaxItems=4, **params)
    assert len(bodies) > 8
    for body in bodies:
        assert body.count(b"<IsTruncated>") == 1
        truncated = b"<IsTruncated>true</IsTruncated>" in body
        assert (b"<Marker>" in body) == truncated
        assert b"<member>" in body and b"ns0:" not in body


def test_lists_follow_changes_made_over_the_api(emulator: Emulator) -> None:
    """A user created or deleted over IAM shows in the next ListUsers (no stale cache)."""
    iam = boto3_client(emulator)
    before = {u["UserName"] for u in _walk(iam.list_users, "Users", MaxItems=10)[0]}
    iam.create_user(UserName="late+joiner@example.com", Path="/late/")
    during = {u["UserName"] for u in _walk(iam.list_users, "Users", MaxItems=10)[0]}
    late = iam.list_users(PathPrefix="/late/")["Users"]
    iam.delete_user(UserName="late+joiner@example.com")
    after = {u["UserName"] for u in _walk(iam.list_users, "Users", MaxItems=10)[0]}
    assert during == before | {"late+joiner@example.com"}
    assert [u["UserName"] for u in late] == ["late+joiner@example.com"]
    assert after == before


def test_aws_managed_policies_are_mostly_unattached(emulator: Emulator) -> None:
    """Scope=AWS lists dozens of policies; OnlyAttached=true keeps just the attached few."""
    iam = boto3_client(emulator)
    paginator = iam.get_paginator("list_policies")
    every = [p for page in paginator.paginate(Scope="AWS") for p in page["Policies"]]
    attached = [
        p for page in paginator.paginate(Scope="AWS", OnlyAttached=True) for p in page["Policies"]
    ]
    assert {p["PolicyName"] for p in attached} == set(AWS_MANAGED_ATTACHED)
    assert all(p["AttachmentCount"] > 0 for p in attached)
    assert len(every) >= 70 and len(every) - len(attached) > 4 * len(attached)
    assert all(p["Arn"].startswith("arn:aws:iam::aws:policy/") for p in every)
    everything = [p for page in paginator.paginate() for p in page["Policies"]]
    assert len(everything) == len(every) + emulator.layout.policies
