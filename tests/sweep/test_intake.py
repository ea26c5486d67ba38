"""The principal queue between discovery and generation: two lanes, each bounded, stream-like ends."""

from __future__ import annotations

import anyio
import pytest

from collector.models import Principal, PrincipalType
from collector.sweep.fetch import ENTITY_REPORTS
from collector.sweep.intake import PrincipalQueue


def principal(kind: PrincipalType, index: int) -> Principal:
    name = f"{kind}-{index}"
    return Principal(f"arn:aws:iam::123456789012:{kind}/{name}", kind, name, f"ID{name}", "/")


async def test_the_first_lane_is_taken_first_whatever_came_first() -> None:
    queue = PrincipalQueue(10, ENTITY_REPORTS)
    receiver, roles, policies = queue.receiver(), queue.sender(), queue.sender()
    for index in range(3):
        await roles.send(principal("role", index))
    await policies.send(principal("policy", 0))
    await roles.send(principal("role", 3))
    await policies.send(principal("policy", 1))
    roles.close()
    policies.close()
    with anyio.fail_after(5):
        taken = [p.name async for p in receiver]
    assert taken == ["policy-0", "policy-1", "role-0", "role-1", "role-2", "role-3"]


async def test_a_full_lane_holds_back_its_own_sender_only() -> None:
    queue = PrincipalQueue(2, ENTITY_REPORTS)
    receiver, users, groups = queue.receiver(), queue.sender(), queue.sender()
    sent: list[str] = []

    async def send_users() -> None:
        for index in range(5):
            await users.send(principal("user", index))
            sent.append(f"user-{index}")

    async with anyio.create_task_group() as group:
        group.start_soon(send_users)
        await anyio.wait_all_tasks_blocked()
        assert sent == ["user-0", "user-1"]  # the user lane is full; its sender waits
        with anyio.fail_after(5):
            for index in range(2):
                await groups.send(principal("group", index))  # the other lane still takes these
        assert (await receiver.receive()).name == "group-0"
        assert (await receiver.receive()).name == "group-1"
        assert (await receiver.receive()).name == "user-0"
        await anyio.wait_all_tasks_blocked()
        assert sent == ["user-0", "user-1", "user-2"]  # one taken, one more in
        with anyio.fail_after(5):
            rest = [(await receiver.receive()).name for _ in range(4)]
    assert rest == ["user-1", "user-2", "user-3", "user-4"]


async def test_ends_behave_as_a_memory_streams_do() -> None:
    """Receivers end once every sender is closed and both lanes are empty; send fails once
    every receiver is closed; closing an end twice is harmless."""
    queue = PrincipalQueue(4, ENTITY_REPORTS)
    first = queue.receiver()
    second = first.clone()
    first.close()  # as start_pool closes the original after cloning it per worker
    first.close()
    sender = queue.sender()
    await sender.send(principal("user", 0))
    sender.close()
    sender.close()
    assert (await second.receive()).name == "user-0"
    with pytest.raises(anyio.EndOfStream):
        await second.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await first.receive()
    with pytest.raises(anyio.ClosedResourceError):
        await sender.send(principal("user", 1))

    orphan = PrincipalQueue(1, ENTITY_REPORTS)
    receiver, late = orphan.receiver(), orphan.sender()
    await late.send(principal("role", 0))

    async def close_soon() -> None:
        await anyio.wait_all_tasks_blocked()
        receiver.close()

    async with anyio.create_task_group() as group:
        group.start_soon(close_soon)
        # Waiting on a full lane when the last reader goes away:
        with anyio.fail_after(5), pytest.raises(anyio.BrokenResourceError):
            await late.send(principal("role", 1))
