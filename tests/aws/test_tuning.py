"""The tuned IAM client answers exactly as botocore's own, and leaves its session alone."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any

import anyio
import botocore.session
import pytest
from aiobotocore.session import AioSession
from botocore.utils import parse_timestamp as botocore_timestamp

from collector.aws.tuning import parse_timestamp, tune_iam_client
from collector.emulator import Emulator, EmulatorOptions, Faults, running_emulator
from collector.models import iso


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with running_emulator(EmulatorOptions(principals=40, seed=3, faults=Faults())) as emulator:
        yield emulator


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T10:00:00Z",
        "2024-05-01T10:00:00.123Z",
        "2024-05-01T10:00:00.123456789Z",
        "2024-05-01T12:00:00+02:00",
        "2024-05-01T10:00:00",  # no zone: botocore's parser decides
        "1714557600",  # epoch seconds: botocore's parser decides
    ],
)
def test_timestamps_parse_to_what_botocore_parses(text: str) -> None:
    """Same instant, same microseconds, so `iso` writes the same text."""
    ours, theirs = parse_timestamp(text), botocore_timestamp(text)
    assert ours == theirs
    assert (ours.tzinfo is None) == (theirs.tzinfo is None)
    if ours.tzinfo is not None:
        assert iso(ours) == iso(theirs)


async def _answers(emu: Emulator) -> tuple[dict[str, Any], dict[str, Any]]:
    """One completed job read by a tuned client and by a plain one made after it."""
    session = AioSession()
    options: dict[str, Any] = {"endpoint_url": emu.endpoint, "region_name": "us-east-1"}
    async with session.create_client("iam", **options) as tuned:
        tune_iam_client(tuned)
        # Created after tuning, from the same session: must still be botocore's own.
        async with session.create_client("iam", **options) as plain:
            arn = (await plain.list_users())["Users"][0]["Arn"]
            job = (await plain.generate_service_last_accessed_details(Arn=arn))["JobId"]
            with anyio.fail_after(20):
                while True:
                    first = await plain.get_service_last_accessed_details(JobId=job)
                    if first["JobStatus"] == "COMPLETED":
                        break
                    await anyio.sleep(0.05)
            mine = await tuned.get_service_last_accessed_details(JobId=job)
    return dict(mine), dict(first)


async def _agents(emu: Emulator, tune: bool) -> list[str]:
    """User-Agent headers of a fresh session's first client over three calls."""
    agents: list[str] = []

    def agent(request: Any, **_: Any) -> None:
        agents.append(request.headers["User-Agent"])

    options: dict[str, Any] = {"endpoint_url": emu.endpoint, "region_name": "us-east-1"}
    async with AioSession().create_client("iam", **options) as client:
        if tune:
            tune_iam_client(client)
        client.meta.events.register_last("request-created.iam", agent)
        for _ in range(3):
            await client.list_users()
    return agents


async def test_tuned_client_answers_as_botocore_and_session_keeps_its_parser(
    emu: Emulator,
) -> None:
    """Equal responses and User-Agent; a client made later from the session is untouched."""
    with anyio.fail_after(60):
        mine, theirs = await _answers(emu)
        agents = await _agents(emu, tune=True)
        assert agents == await _agents(emu, tune=False)
    mine.pop("ResponseMetadata"), theirs.pop("ResponseMetadata")
    assert mine == theirs
    assert mine["ServicesLastAccessed"]
    assert mine["JobCreationDate"].tzinfo is UTC
    # botocore's dateutil parser gives its own tzutc: the untuned client still uses it.
    assert theirs["JobCreationDate"].tzinfo is not UTC
    assert len(agents) == 3


def test_iam_operations_take_no_endpoint_context_parameters() -> None:
    """What makes one endpoint per operation exact: IAM's ruleset sees no call argument."""
    model = botocore.session.get_session().get_service_data("iam")
    keys = {"contextParams", "staticContextParams", "operationContextParams"}
    assert len(model["operations"]) > 100  # the model loaded: the checks below look at it
    assert [name for name, op in model["operations"].items() if keys & set(op)] == []
    assert "contextParam" not in json.dumps(model["shapes"])


async def test_tuned_client_resolves_each_operations_endpoint_once(emu: Emulator) -> None:
    """Five calls of two operations: two ruleset evaluations, and every call answered."""
    resolved: list[str] = []
    options: dict[str, Any] = {"endpoint_url": emu.endpoint, "region_name": "us-east-1"}
    async with AioSession().create_client("iam", **options) as client:
        resolver: Any = client._ruleset_resolver  # type: ignore[attr-defined]
        original = resolver.construct_endpoint

        async def counted(operation_model: Any, call_args: Any, request_context: Any) -> Any:
            resolved.append(operation_model.name)
            return await original(operation_model, call_args, request_context)

        resolver.construct_endpoint = counted
        tune_iam_client(client)
        with anyio.fail_after(30):
            for _ in range(3):
                assert (await client.list_users(MaxItems=1))["Users"]
            for _ in range(2):
                assert (await client.list_roles(MaxItems=1))["Roles"]
    assert resolved == ["ListUsers", "ListRoles"]
