"""One org run per manifest at a time: a flock beside a local manifest, a lease beside an S3 one."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog

from collector.errors import OutputError
from collector.output.lock import OutputLock
from collector.output.s3 import S3Target
from collector.output.s3lock import RENEW_SECONDS, LeaseLostError, S3Lease
from collector.output.sink import output_error

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

log = structlog.get_logger()
ADVICE = "wait for it to finish, or give this run another --manifest (or --run-id)"


def _make_directory(directory: Path) -> list[Path]:
    """Create `directory` and its missing parents; the ones created, deepest first."""
    missing = [p for p in (directory, *directory.parents) if not p.exists()]
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise output_error(exc, action="create", path=directory, started=False) from None
    return missing


@asynccontextmanager
async def local_run_lock(manifest: str, run_id: str) -> AsyncIterator[None]:
    """`MANIFEST.lock` held with flock for the whole run (the kernel drops it if we die): a
    second org run on the same manifest stops at once (exit 5) naming this one. Directories
    made for it are removed again if the run leaves them empty."""
    path = Path(manifest)
    made = await anyio.to_thread.run_sync(_make_directory, path.parent)
    lock = OutputLock(path, advice=ADVICE)
    try:
        await anyio.to_thread.run_sync(lock.acquire, run_id)
        yield
    finally:
        lock.release()
        for directory in made:
            with contextlib.suppress(OSError):  # not empty: the run wrote something there
                directory.rmdir()


async def _keep(lease: S3Lease, lost: Callable[[LeaseLostError], None]) -> None:
    """Renew the lease until cancelled; a failed renewal is tried again, a lost lease reported."""
    while True:
        await anyio.sleep(RENEW_SECONDS)
        try:
            await lease.renew()
        except LeaseLostError as error:
            lost(error)
            return
        except OutputError as error:
            # S3 unreachable for a moment: the next renewal may still find the lease ours.
            log.warning("collector.lock.renew_failed", lock=lease.uri, error=str(error))


async def take_s3_lock(s3: S3Client, manifest: str, target: S3Target, run_id: str) -> S3Lease:
    """`MANIFEST.lock` as an S3 lease: taken now, or OutputLockedError (exit 5) naming the run
    that holds it; a lease its holder stopped renewing (killed) is taken over once it has not
    been renewed for its length."""
    lease = S3Lease(s3, manifest + ".lock", target, run_id=run_id, advice=ADVICE)
    await lease.acquire()
    return lease


@asynccontextmanager
async def holding(lease: S3Lease, *, lost: Callable[[LeaseLostError], None]) -> AsyncIterator[None]:
    """Keep a taken lease for as long as the run lasts (renewed in the background), then
    release it. `lost` is called if another run takes it from this one (this one could not
    renew it for the lease's length)."""
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_keep, lease, lost, name="lock-renewal")
            try:
                yield
            finally:
                group.cancel_scope.cancel()
    finally:
        with anyio.CancelScope(shield=True):
            await lease.release()
