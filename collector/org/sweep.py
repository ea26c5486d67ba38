"""An organisation's sweep: accounts listed and sharded, an account sweep each, a manifest last."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import structlog
from aiobotocore.session import AioSession

from collector.aws.clients import account_iam, caller_session, client_config, s3_client, shared_iam
from collector.aws.shared import SharedIam
from collector.config.settings import Settings
from collector.errors import (
    AssumeRoleError,
    ConfigError,
    OutputLockedError,
    first_collector_error,
)
from collector.models import OrgProgress, Record
from collector.org.accessrun import finished_report, output_location, write_org_access
from collector.org.credentials import (
    AssumeRoleSettings,
    account_credentials,
    session_account,
    sts_client,
)
from collector.org.inflight import AccountsInFlight, InFlightPolicy, memory_budget
from collector.org.listing import Account, AccountListing, AccountSelection, list_accounts
from collector.org.listing import read_account_file as read_ids
from collector.org.manifest import (
    AccountEntry,
    AccountError,
    Manifest,
    OrgAccessEntry,
    Outcome,
    unswept_entry,
    write_manifest,
)
from collector.org.placement import check_placement, manifest_path
from collector.org.runlock import holding, local_run_lock, take_s3_lock
from collector.org.shard import Shard
from collector.output.runline import published_run, s3_published_run
from collector.output.s3 import S3Target, s3_call, split
from collector.sweep.account import sweep_account
from collector.sweep.descriptors import accounts_within, open_files_limit
from collector.sweep.jobs import JobLatencies
from collector.sweep.shutdown import Shutdown
from collector.template import OutputTemplate

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client
else:
    S3Client = Any

log = structlog.get_logger()

# After a stop's grace, an account's sweep still waiting on something (a hung call before its
# stages started, say) is cut off this much later: its final flush is shielded and not cut.
STOP_MARGIN = 2.0

# Outcomes after which the run's exit code says "not everything is there" (1).
INCOMPLETE = frozenset({"partial", "interrupted", "failed", "assume_role_denied"})


@dataclass(frozen=True)
class _Shared:
    """What every account of the run uses: the caller's session and account, one STS client
    for every AssumeRole, and the IAM client each account gets a copy of."""

    base: AioSession
    caller: str
    sts: Any
    iam: SharedIam


@dataclass(frozen=True)
class OrgResult:
    """What the CLI needs: the manifest and where it went (None when the run was stopped)."""

    manifest: Manifest
    path: str | None  # a file path or an s3:// URI

    @property
    def complete(self) -> bool:
        access = self.manifest.org_access
        if access is not None and access.status != "complete":
            return False
        return not any(entry.outcome in INCOMPLETE for entry in self.manifest.accounts)


def check_org_settings(settings: Settings) -> None:
    """What an organisation sweep needs, checked before any AWS call (ConfigError, exit 2)."""
    template = OutputTemplate.parse(settings.output)
    if template.is_stdout or not template.needs_account:
        raise ConfigError(
            f"output {settings.output!r} must contain {{account_id}} when more than one account "
            "is swept (one file per account), e.g. out/{account_id}-{date}.jsonl"
        )
    if settings.org.role_name is None:
        raise ConfigError(
            "--role-name is required with --org, --ou or --accounts: the role collector "
            "assumes in each member account (e.g. --role-name collector-audit)"
        )
    assume_settings(settings)
    selection(settings)  # ids, OU ids and the accounts file, read and checked now
    if settings.org_access_report and not settings.org.org:
        raise ConfigError(
            "--org-access-report needs --org: the report covers the root, every OU and every "
            "account, from the management account"
        )


def assume_settings(settings: Settings) -> AssumeRoleSettings:
    """How this run gets into each account (the session name's {run_id} is filled per call)."""
    org = settings.org
    return AssumeRoleSettings(
        role_name=org.role_name or "",
        external_id=org.external_id,
        session_name=org.role_session_name,
        duration_seconds=org.role_duration,
        region=settings.region,
        endpoint_url=settings.endpoint_url,
    )


def selection(settings: Settings) -> AccountSelection:
    org = settings.org
    accounts = org.accounts
    if org.accounts_file is not None:
        accounts = accounts + read_ids(Path(org.accounts_file))
    return AccountSelection(
        org=org.org,
        ous=org.ous,
        accounts=accounts,
        include=frozenset(org.include_accounts),
        exclude=frozenset(org.exclude_accounts),
    )


async def _publish_manifest(
    manifest: Manifest, location: str, s3: S3Client | None, target: S3Target
) -> None:
    """Written atomically: a local file by rename, an S3 object by one PutObject."""
    if s3 is None:
        await anyio.to_thread.run_sync(write_manifest, manifest, Path(location))
        return
    bucket, key = split(location)
    body = manifest.to_json().encode()
    await s3_call(
        location,
        lambda: s3.put_object(
            Bucket=bucket, Key=key, Body=body, ExpectedBucketOwner=target.expected_owner,
            ContentType="application/json", **target.encryption(),
        ),
    )  # fmt: skip


def _missing_included(listing: AccountListing, settings: Settings) -> None:
    """ConfigError naming `--include-accounts` ids the selection did not return: a typo must
    not sweep nothing and succeed."""
    if not listing.missing:
        return
    source = ("the --accounts list" if settings.org.accounts or settings.org.accounts_file
              else "the OUs given" if settings.org.ous else "the organisation")  # fmt: skip
    raise ConfigError(
        f"--include-accounts: {', '.join(listing.missing)} not in {source}; "
        "check the ids (an account must be listed to be included)"
    )


class OrgSweep:
    """Account sweeps side by side, as many at once as CPU and memory allow (at most
    `max_accounts_in_flight`), each with its own credentials, token buckets and jobs-in-flight
    bound; failures stay per account."""

    def __init__(
        self,
        settings: Settings,
        *,
        run_id: str,
        shard: Shard | None,
        shutdown: Shutdown,
        progress: OrgProgress | None = None,
        base: AioSession | None = None,
    ) -> None:
        self.settings = settings
        self.run_id = run_id
        self.shard = shard
        self.shutdown = shutdown
        self.progress = progress or OrgProgress()
        self._base = base
        self._template = OutputTemplate.parse(settings.output)
        self._assume = assume_settings(settings)
        self._entries: list[AccountEntry] = []
        self._org_access: OrgAccessEntry | None = None
        self._latencies = JobLatencies()  # learned once for every account this process sweeps
        self._s3: S3Client | None = None  # for S3 output or manifest: resume, lock, publish
        self._target = S3Target("")  # the bucket owner, once the caller is known
        # Stop (see stop()): the listing and AssumeRole calls end at once, account sweeps
        # get the grace (and STOP_MARGIN).
        self._starting: set[anyio.CancelScope] = set()
        self._running: set[anyio.CancelScope] = set()
        self._stopped_at: float | None = None
        self._lock_lost: OutputLockedError | None = None
        self._peak_in_flight = 0  # the most accounts that ran at once (the finished line says)

    def stop(self, grace: float) -> None:
        """A stop request (Shutdown calls it): nothing new starts; the listing and AssumeRole
        calls in flight end now (they have nothing to save); an account's sweep stops itself
        within `grace` (Shutdown reaches it too) and whatever it still waits on is cut off at
        `grace` + STOP_MARGIN, whichever call that is."""
        self._stopped_at = anyio.current_time() + grace + STOP_MARGIN
        for scope in self._starting:
            scope.cancel()
        for scope in self._running:
            scope.deadline = min(scope.deadline, self._stopped_at)

    @contextmanager
    def _phase(self, scopes: set[anyio.CancelScope]) -> Iterator[anyio.CancelScope]:
        """A cancel scope that stop() reaches while it is open (one begun after a stop is
        already cancelled, or due)."""
        scope = anyio.CancelScope()
        if self._stopped_at is not None:
            scope.deadline = self._stopped_at if scopes is self._running else -float("inf")
        scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            scopes.discard(scope)

    def _lost(self, error: OutputLockedError) -> None:
        """Another run took this run's S3 lock: stop, and publish no manifest."""
        log.error("collector.org.lock_lost", error=str(error))
        self._lock_lost = error
        self.stop(self.shutdown.grace)

    async def run(self) -> OrgResult:
        started = datetime.now(UTC)
        path = manifest_path(self.settings, self.run_id, self.shard, started)
        check_placement(self.settings, path, self.run_id, self.shard)
        with self.shutdown.watching(self):
            async with AsyncExitStack() as stack:
                if not path.startswith("s3://"):
                    # Before any AWS call: a second run on this manifest stops at once.
                    await stack.enter_async_context(local_run_lock(path, self.run_id))
                base = self._base or await caller_session(self.settings)
                caller: str | None = None
                with self._phase(self._starting):
                    caller = await session_account(base, self.settings)
                if caller is None:  # stopped: nothing to publish
                    return OrgResult(self._manifest(started, None), None)
                owner = self.settings.s3_bucket_owner or caller
                self._target = S3Target(owner, self.settings.sse_kms_key_id)
                if self._template.is_s3 or path.startswith("s3://"):
                    self._s3 = await stack.enter_async_context(s3_client(self.settings, base))
                if self._s3 is not None and path.startswith("s3://"):
                    lease = None
                    with self._phase(self._starting):
                        lease = await take_s3_lock(self._s3, path, self._target, self.run_id)
                    if lease is None:  # stopped
                        return OrgResult(self._manifest(started, None), None)
                    await stack.enter_async_context(holding(lease, lost=self._lost))
                whole: AccountListing | None = None
                with self._phase(self._starting):
                    whole = await self._list(base)
                if whole is None:  # stopped while listing: nothing to publish
                    return OrgResult(self._manifest(started, None), None)
                _missing_included(whole, self.settings)
                return await self._sweep(base, caller, whole, path, started)

    def _manifest(self, started: datetime, listing: AccountListing | None) -> Manifest:
        return Manifest(
            run_id=self.run_id,
            organization_id=None if listing is None else listing.organization_id,
            started=started,
            finished=datetime.now(UTC),
            accounts=tuple(sorted(self._entries, key=lambda entry: entry.account_id)),
            listed_accounts=() if listing is None else listing.listed,
            shard=self.shard,
            org_access=self._org_access,
        )

    async def _sweep(
        self, base: AioSession, caller: str, whole: AccountListing, path: str, started: datetime
    ) -> OrgResult:
        listing = whole if self.shard is None else whole.select(self.shard.owns)
        self._entries = [unswept_entry(a) for a in listing.not_swept]
        self._entries += [unswept_entry(a, excluded=True) for a in listing.excluded]
        todo = listing.to_sweep
        self.progress.accounts = len(todo)
        # The IAM and STS connection pools are shared by every account; each account adds its
        # output's files and an S3 upload: never more accounts than the open-files limit allows
        # (an EMFILE would fail accounts with a misleading reason).
        open_files = open_files_limit()
        pool: int = getattr(client_config(), "max_pool_connections", 10)  # not in the stubs
        fit = accounts_within(open_files - 2 * pool, 0)
        upper = min(self.settings.max_accounts_in_flight, max(len(todo), 1), fit)
        if fit < min(self.settings.max_accounts_in_flight, len(todo)):
            log.warning("collector.org.accounts_in_flight_limited", open_files=open_files,
                        requested=self.settings.max_accounts_in_flight, allowed=fit)  # fmt: skip
        log.info(
            "collector.org.started",
            run_id=self.run_id,
            organization_id=listing.organization_id,
            accounts=len(todo),
            not_swept=len(self._entries),
            shard=str(self.shard) if self.shard else None,
            accounts_in_flight=upper,
            open_files=open_files,
        )
        async with (
            sts_client(base, self._assume) as sts,
            shared_iam(self.settings, base) as iam,
            anyio.create_task_group() as group,
        ):
            if self.settings.org_access_report and (self.shard is None or self.shard.index == 0):
                # Once per run (shard 0), beside the account sweeps, for the whole listing.
                group.start_soon(self._access_report, base, caller, whole, path)
            await self._sweep_accounts(todo, upper, _Shared(base, caller, sts, iam))
        manifest = self._manifest(started, listing)
        if self._lock_lost is not None:
            raise self._lock_lost  # another run holds the manifest now: it publishes, not us
        if self.shutdown.requested:
            return OrgResult(manifest, None)  # no manifest: the run is not over; --resume it
        s3 = self._s3 if path.startswith("s3://") else None
        await _publish_manifest(manifest, path, s3, self._target)
        log.info("collector.org.finished", manifest=str(path), outcomes=manifest.outcomes(),
                 peak_accounts_in_flight=self._peak_in_flight)  # fmt: skip
        return OrgResult(manifest, path)

    async def _access_report(
        self, base: AioSession, caller: str, listing: AccountListing, manifest: str
    ) -> None:
        """The organizations access report (--org-access-report) into its org-level file."""
        location = output_location(manifest, self.run_id)
        with self._phase(self._running):
            if self.settings.resume:
                s3 = self._s3 if location.startswith("s3://") else None
                done = await finished_report(location, self.run_id, s3, self._target)
                if done is not None:
                    self._org_access = done
                    return
            self._org_access = await write_org_access(
                self.settings,
                base,
                organization_id=listing.organization_id or "",
                account_id=caller,
                account_ids=[account.id for account in listing.to_sweep],
                location=location,
                run_id=self.run_id,
                shutdown=self.shutdown,
            )

    async def _list(self, base: AioSession) -> AccountListing:
        chosen = selection(self.settings)
        if chosen.accounts:
            return await list_accounts(chosen, None)
        async with base.create_client(
            "organizations",
            region_name=self.settings.region,
            endpoint_url=self.settings.endpoint_url,
            config=client_config(),
        ) as client:
            return await list_accounts(chosen, client)

    async def _sweep_accounts(self, todo: Sequence[Account], upper: int, shared: _Shared) -> None:
        """A task per account, each started once the in-flight limit has room for it."""
        in_flight = AccountsInFlight(
            InFlightPolicy(upper=upper, memory_budget=memory_budget(self.settings.memory_budget_mb))
        )
        async with anyio.create_task_group() as watching:
            watching.start_soon(in_flight.watch, name="accounts-in-flight")
            async with anyio.create_task_group() as accounts:
                in_flight.queued = len(todo)
                for account in todo:
                    await in_flight.acquire(account)
                    in_flight.queued -= 1
                    self._peak_in_flight = max(self._peak_in_flight, in_flight.in_flight)
                    self.progress.in_flight += 1
                    accounts.start_soon(
                        self._one, shared, account, in_flight, name=f"account-{account.id}"
                    )
            watching.cancel_scope.cancel()

    async def _one(self, shared: _Shared, account: Account, in_flight: AccountsInFlight) -> None:
        try:
            entry = await self._account(shared, account)
        finally:
            in_flight.release(account)
            self.progress.in_flight -= 1
        self.progress.done += 1
        self._entries.append(entry)

    async def _account(self, shared: _Shared, account: Account) -> AccountEntry:
        """One account's sweep, whatever happens to it, as its manifest entry."""
        entry = AccountEntry(
            account_id=account.id,
            outcome="interrupted",
            account_name=account.name,
            state=account.state,
            ou_path=account.path,
        )
        if self.shutdown.requested:
            return entry  # never started: --resume will
        credentials: Any = None
        with self._phase(self._starting):
            try:
                if self.settings.resume:
                    done = await self._finished(account.id)
                    if done is not None:
                        log.info("collector.org.account_already_done", account_id=account.id)
                        return replace(entry, outcome=done["status"], output=done["output"],
                                       records=done.get("records") or {})  # fmt: skip
                credentials = await account_credentials(
                    shared.base, account.id, caller_account=shared.caller,
                    settings=self._assume, run_id=self.run_id, sts=shared.sts,
                )  # fmt: skip
            except AssumeRoleError as error:
                # Denied is the role's configuration; anything else (a 5xx, a timeout, an
                # answer that is not credentials, no file descriptor left) is a failure.
                outcome: Outcome = "assume_role_denied" if error.denied else "failed"
                log.warning("collector.org.assume_role_failed", account_id=account.id,
                            code=error.code, message=error.message, outcome=outcome)  # fmt: skip
                return replace(entry, outcome=outcome,
                               error=AccountError(error.code, error.message))  # fmt: skip
            except Exception as error:  # whatever it is, see _failed: one account, never the run
                return _failed(entry, error)
        if credentials is None or self.shutdown.requested:
            return entry  # stopped before its sweep began: --resume sweeps it
        counters, stats = self.progress.sweep_started(account.id)
        result = None
        with self._phase(self._running):
            try:
                result = await sweep_account(
                    self.settings,
                    run_id=self.run_id,
                    shutdown=self.shutdown,
                    counters=counters,
                    stats=stats,
                    output_session=shared.base,
                    output_owner=shared.caller,
                    latencies=self._latencies,
                    resume_run=self.run_id,
                    account=await account_iam(shared.iam, credentials, account.id),
                    early_polls=False,  # the accounts in flight share the CPU: poll when due
                    output_s3=self._s3 if self._template.is_s3 else None,
                )
            except Exception as error:  # whatever it is, see _failed: one account, never the run
                return _failed(entry, error)
            finally:
                self.progress.sweep_ended(account.id)
        if result is None:
            return entry  # cut off past the stop's grace: interrupted, its .part kept
        return replace(
            entry,
            outcome=result.status,
            output=result.path or _part_of(self._template, account.id),
            records=result.run["records"],
        )

    async def _finished(self, account_id: str) -> Record | None:
        """This run's finished output of the account (its run line), local or in S3."""
        if self._s3 is not None and self._template.is_s3:
            return await s3_published_run(
                self._s3, self._template, account_id, self.run_id, self._target
            )
        return await anyio.to_thread.run_sync(
            published_run, self._template, account_id, self.run_id
        )


def _failed(entry: AccountEntry, error: Exception) -> AccountEntry:
    """The entry of an account whose sweep raised: `failed`, with what went wrong.

    The account's stages run in nested task groups, so its error usually arrives wrapped in an
    ExceptionGroup. Whatever one account raises stays that account's outcome (DESIGN: the other
    accounts finish and the manifest is written); cancellation and interrupts are
    BaseExceptions and pass. An error that is not one of ours is a bug: logged with its
    traceback, so it can be fixed, and still only this account's failure.
    """
    found = first_collector_error(error)
    if found is None:
        log.error("collector.org.account_crashed", account_id=entry.account_id, exc_info=error)
        failure = AccountError("InternalError", f"{type(error).__name__}: {error}"[:300])
    else:
        # AWS's code when there is one (DiscoveryError carries it on its cause).
        code = getattr(found, "code", None) or getattr(found.__cause__, "code", None)
        failure = AccountError(str(code or type(found).__name__), str(found))
        log.warning("collector.org.account_failed", account_id=entry.account_id,
                    code=failure.code, error=failure.message)  # fmt: skip
    return replace(entry, outcome="failed", error=failure)


def _part_of(template: OutputTemplate, account_id: str) -> str | None:
    part = template.resumable(account_id=account_id)
    return None if part is None else os.fspath(part)
