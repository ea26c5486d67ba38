"""The caller STS names is the caller AccessDenied names."""

from __future__ import annotations

from collector.emulator import Faults
from tests.support.emulator_clients import EmulatorFactory, boto3_client, raised


def test_caller_identity_matches_access_denied(emulator_with: EmulatorFactory) -> None:
    """GetCallerIdentity's Arn is the principal AccessDenied says is not authorized."""
    with emulator_with(faults=Faults(access_denied=frozenset({"ListUsers"}))) as emu:
        identity = boto3_client(emu, "sts").get_caller_identity()
        status, error = raised(boto3_client(emu).list_users)
    assert (status, error["Code"]) == (403, "AccessDenied")
    assert error["Message"].startswith(f"User: {identity['Arn']} is not authorized to perform:")
    assert identity["Arn"] == f"arn:aws:iam::{emu.account_id}:user/collector"
    assert identity["Account"] == emu.account_id
    assert identity["UserId"].startswith("AIDA") and len(identity["UserId"]) == 21


def test_caller_identity_is_per_account(emulator_with: EmulatorFactory) -> None:
    """Each emulated account has its own caller, stable across starts."""
    ids = []
    for account in ("111111111111", "222222222222", "111111111111"):
        with emulator_with(principals=4, account_id=account) as emu:
            ids.append(boto3_client(emu, "sts").get_caller_identity()["UserId"])
    assert ids[0] == ids[2] != ids[1]
