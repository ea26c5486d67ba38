"""The S3 lease against a real moto server: one holder, named; released; a stale one taken over."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest

from collector.errors import OutputLockedError
from collector.output.s3 import S3Target
from collector.output.s3lock import LeaseLostError, S3Lease
from tests.support.moto_org import MANAGEMENT, MotoOrg, moto_server

URI = "s3://locks/m/manifest.json.lock"


@pytest.fixture
def moto() -> Iterator[MotoOrg]:
    with moto_server() as server:
        yield server


@pytest.fixture
async def s3(moto: MotoOrg) -> AsyncIterator[Any]:
    async with moto.client("s3") as client:
        await client.create_bucket(Bucket="locks")
        yield client


def lease(s3: Any, run_id: str, seconds: float = 30.0) -> S3Lease:
    return S3Lease(
        s3, URI, S3Target(MANAGEMENT), run_id=run_id, advice="wait", lease_seconds=seconds
    )


async def test_a_held_lease_refuses_a_second_holder_naming_the_first(s3: Any) -> None:
    """The lock object exists while held: a second acquire is OutputLockedError (exit 5) naming
    the holder's host, pid and run; after release the second acquires at once."""
    with anyio.fail_after(30):
        first, second = lease(s3, "run-a"), lease(s3, "run-b")
        await first.acquire()
        with pytest.raises(OutputLockedError) as caught:
            await second.acquire()
        assert "run run-a" in str(caught.value) and "pid" in str(caught.value)
        assert caught.value.exit_code == 5
        await first.renew()  # still ours
        await first.release()
        listed = await s3.list_objects_v2(Bucket="locks")
        assert listed.get("KeyCount") == 0
        await second.acquire()
        await second.release()


async def test_a_lease_not_renewed_is_taken_over_and_its_holder_learns_it(s3: Any) -> None:
    """A holder that stops renewing (killed) loses the lease once it is older than the lease
    length on S3's clock: another run takes it over, and the old holder's next renewal is
    LeaseLostError (it must not publish)."""
    with anyio.fail_after(30):
        stale, fresh = lease(s3, "killed", seconds=1.0), lease(s3, "retry", seconds=1.0)
        await stale.acquire()
        while True:  # S3 dates have whole seconds: the lease is stale within about two
            try:
                await fresh.acquire()
                break
            except OutputLockedError:
                await anyio.sleep(0.25)
        with pytest.raises(LeaseLostError):
            await stale.renew()
        await stale.release()  # not ours any more: nothing deleted
        body = await (await s3.get_object(Bucket="locks", Key="m/manifest.json.lock"))[
            "Body"
        ].read()
        assert b'"retry"' in body
        await fresh.release()
