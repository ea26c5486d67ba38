"""The seeded account and the ground truth: shape, determinism, modes, isolation."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, running_emulator
from collector.emulator.account import AWS_MANAGED_ATTACHED, layout
from tests.support.emulator_clients import EmulatorFactory, boto3_client, of_kind

TIMESTAMPS = {"last_authenticated", "tracked_actions"}


def _stable(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # "now" is captured per start, so timestamps move between runs; the rest must not.
    return [{k: v for k, v in r.items() if k not in TIMESTAMPS} for r in records]


def test_layout_splits_principals_over_every_kind() -> None:
    """Counts add up, every kind is present from 4 principals, users are the largest share."""
    for total in (4, 10, 37, 10_000):
        shape = layout(total)
        assert shape.users + shape.groups + shape.roles + shape.policies == total
        assert min(shape.users, shape.groups, shape.roles, shape.policies) >= 1
        assert shape.users == max(shape.users, shape.groups, shape.roles, shape.policies)
    assert layout(0).users == 0


def test_seeded_account_has_the_promised_variety(emulator_with: EmulatorFactory) -> None:
    """Members, inline and AWS-managed policies, team paths, and a principal allowed `*`."""
    with emulator_with(principals=200) as emu:
        iam = boto3_client(emu)
        truth = emu.ground_truth(aws_managed_policies=True)
        users = iam.list_users()["Users"]
        groups = iam.list_groups()["Groups"]
        members = sum(len(iam.get_group(GroupName=g["GroupName"])["Users"]) for g in groups)
        inline = sum(
            len(iam.list_user_policies(UserName=u["UserName"])["PolicyNames"]) for u in users
        )
        aws = iam.list_policies(Scope="AWS", OnlyAttached=True)["Policies"]
    principals = of_kind(truth, "principal")
    assert Counter(r["principal_type"] for r in principals) == {
        "user": 90,
        "group": 20,
        "role": 50,
        "policy": 40 + len(AWS_MANAGED_ATTACHED),
    }
    assert members > len(groups)
    assert inline > 10
    assert {p["PolicyName"] for p in aws} == set(AWS_MANAGED_ATTACHED)
    assert any(u["Path"] != "/" for u in users)
    assert max(r["services"] for r in principals) >= 100
    accessed = [r["services_accessed"] / r["services"] for r in principals if r["services"]]
    assert 0.02 < sum(accessed) / len(accessed) < 0.5  # some services used, most not


def test_same_seed_same_account(emulator_with: EmulatorFactory) -> None:
    """Two emulators with one seed hold the same principals, ids, services and entities."""
    runs = []
    for _ in range(2):
        with emulator_with(principals=60, seed=3) as emu:
            runs.append(_stable(emu.ground_truth(entities="all", granularity="ACTION_LEVEL")))
    with emulator_with(principals=60, seed=4) as emu:
        other = _stable(emu.ground_truth(entities="all"))
    assert runs[0] == runs[1]
    assert of_kind(runs[0], "principal") != of_kind(other, "principal")


def test_entities_modes(emulator: Any) -> None:
    """none: no entity records; accessed: group/policy reports, used namespaces; all: everything."""
    none = emulator.ground_truth(entities="none")
    accessed = emulator.ground_truth(entities="accessed")
    everything = emulator.ground_truth(entities="all")
    assert not of_kind(none, "entity")
    assert all(r["entities"] == 0 for r in of_kind(none, "principal"))
    picked = of_kind(accessed, "entity")
    assert picked and {r["principal_type"] for r in picked} <= {"group", "policy"}
    used = {
        (r["principal_arn"], r["service_namespace"])
        for r in of_kind(accessed, "service")
        if r["last_authenticated"]
    }
    assert {(r["principal_arn"], r["service_namespace"]) for r in picked} <= used
    assert {r["principal_type"] for r in of_kind(everything, "entity")} == {
        "user",
        "group",
        "role",
        "policy",
    }
    assert len(of_kind(everything, "entity")) > len(picked)
    for records in (none, accessed, everything):
        counted = sum(r["entities"] for r in of_kind(records, "principal"))
        assert counted == len(of_kind(records, "entity"))


def test_ground_truth_records_are_schema_one_without_run_fields(emulator: Any) -> None:
    """Every record carries the common fields and none of run_id, job_id or job dates."""
    truth = emulator.ground_truth(granularity="ACTION_LEVEL", entities="all")
    for record in truth:
        assert record["schema"] == 1 and record["account_id"] == emulator.account_id
        assert not {"run_id", "job_id", "job_created", "job_completed", "message"} & record.keys()
    stamps = [r["last_authenticated"] for r in of_kind(truth, "service") if r["last_authenticated"]]
    assert stamps and all(len(s) == 20 and s.endswith("Z") for s in stamps)
    tracked = [r for r in of_kind(truth, "service") if r["tracked_actions"]]
    assert {r["service_namespace"] for r in tracked} <= {"s3", "ec2", "iam", "lambda"}


def test_two_emulators_need_two_accounts(emulator_with: EmulatorFactory) -> None:
    """Emulators run side by side in other accounts; a second one on the same account is refused."""
    with emulator_with(principals=10) as first:
        same_account = running_emulator(EmulatorOptions(principals=5))
        with pytest.raises(RuntimeError, match="already running"), same_account:
            pass
        with running_emulator(EmulatorOptions(principals=5, account_id="210987654321")) as second:
            a = boto3_client(first).list_users()["Users"]
            b = boto3_client(second).list_users()["Users"]
            identity = boto3_client(second, "sts").get_caller_identity()
    assert len(a) == layout(10).users and len(b) == layout(5).users
    assert all(":210987654321:" in u["Arn"] for u in b)
    assert identity["Account"] == "210987654321"


def test_wide_share_makes_star_policies_attached_widely(emulator_with: EmulatorFactory) -> None:
    """A wide account: a share of the policies allow `*` and are attached to 20-200 principals."""
    with emulator_with(principals=400, wide_share=0.05) as emu:
        truth = emu.ground_truth()
    principals = {r["principal_arn"]: r for r in of_kind(truth, "principal")}
    services = Counter(r["principal_arn"] for r in of_kind(truth, "service"))
    entities = Counter(r["principal_arn"] for r in of_kind(truth, "entity"))
    wide = [
        arn
        for arn, record in principals.items()
        if record["principal_type"] == "policy"
        and "break-glass" not in arn
        and services[arn] == max(services.values())
    ]
    assert len(wide) == 4  # 5% of the 80 customer-managed policies, each allowing every service
    # Used by 20-200 principals: most of its namespaces are accessed, each by many entities.
    assert all(principals[arn]["services_accessed"] > services[arn] / 2 for arn in wide)
    assert all(entities[arn] >= 20 * principals[arn]["services_accessed"] for arn in wide)
