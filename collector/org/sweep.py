"""An organisation's sweep: accounts listed and sharded, an account sweep each, a manifest last."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import structlog
from aiobotocore.session import AioSession

from collector.aws.clients import account_iam, caller_session, client_config, s3_client, shared_iam
from collector.aws.shared import SharedIam
from collector.config.settings import Settings
from collector.errors import AssumeRoleError, CollectorError, ConfigError
from collector.models import OrgProgress
from collector.org.accessrun import finished_report, output_location, write_org_access
from collector.org.credentials import (
    AssumeRoleSettings,
    account_credentials,
    caller_account,
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
    unswept_entry,
    write_manifest,
)
from collector.org.shard import Shard
from collector.output.s3 import S3Target, s3_call, split
from collector.sweep.account import sweep_account
from collector.sweep.jobs import JobLatencies
from collector.sweep.shutdown import Shutdown
from collector.template import OutputTemplate

log = structlog.get_logger()

# Outcomes after which the run's exit code says "not everything is there" (1).
INCOMPLETE = frozenset({"partial", "interrupted", "failed", "assume_role_denied"})


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
    assume_settings(settings, "check")
    selection(settings)  # ids, OU ids and the accounts file, read and checked now
    if settings.org_access_report and not settings.org.org:
        raise ConfigError(
            "--org-access-report needs --org: the report covers the root, every OU and every "
            "account, from the management account"
        )


def assume_settings(settings: Settings, run_id: str) -> AssumeRoleSettings:
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


@dataclass(frozen=True)
class _Shared:
    """What every account of the run uses: the caller's session and account, one STS client
    for every AssumeRole, and the IAM client each account gets a copy of."""

    base: AioSession
    caller: str
    sts: Any
    iam: SharedIam


def manifest_path(settings: Settings, run_id: str, shard: Shard | None, now: datetime) -> str:
    """`--manifest` rendered, or manifest.json (manifest-{shard}.json) beside the account files:
    in the directory (or S3 prefix) the output template renders to."""
    values = {
        "run_id": run_id,
        "date": now.astimezone(UTC).strftime("%Y-%m-%d"),
        "shard": "" if shard is None else str(shard.index),
    }
    if settings.manifest is not None:
        try:
            return settings.manifest.format(**values)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"manifest: {settings.manifest!r} can use only {{run_id}}, {{date}} and "
                f"{{shard}} ({exc})"
            ) from None
    name = "manifest.json" if shard is None else f"manifest-{shard.index}.json"
    scheme = "s3://" if settings.output.startswith("s3://") else ""
    directory: list[str] = []
    for part in settings.output.removeprefix(scheme).split("/")[:-1]:
        if "{account_id}" in part:
            break
        directory.append(part.format(**values, account_id=""))
    return scheme + "/".join([*directory, name])


async def _publish_manifest(
    manifest: Manifest, location: str, settings: Settings, session: AioSession, owner: str
) -> None:
    """Written atomically: a local file by rename, an S3 object by one PutObject."""
    if not location.startswith("s3://"):
        await anyio.to_thread.run_sync(write_manifest, manifest, Path(location))
        return
    bucket, key = split(location)
    body = manifest.to_json().encode()
    target = S3Target(settings.s3_bucket_owner or owner, settings.sse_kms_key_id)
    async with s3_client(settings, session) as s3:
        if target.kms_key_id is None:
            send = partial(s3.put_object, ServerSideEncryption="AES256")
        else:
            send = partial(
                s3.put_object, ServerSideEncryption="aws:kms", SSEKMSKeyId=target.kms_key_id
            )
        await s3_call(
            location,
            lambda: send(
                Bucket=bucket, Key=key, Body=body, ExpectedBucketOwner=target.expected_owner,
                ContentType="application/json",
            ),
        )  # fmt: skip


def _finished_output(
    template: OutputTemplate, account_id: str, run_id: str
) -> dict[str, Any] | None:
    """The run line of this run's published file for the account, if one exists (resume)."""
    part = template.resumable(account_id=account_id)
    published = None if part is not None else template.published(account_id=account_id)
    if published is None:
        return None
    opener: Callable[..., Any] = gzip.open if published.name.endswith(".gz") else open
    try:
        with opener(published, "rb") as handle:
            last = b""
            for last in handle:  # noqa: B007 - the last line is the run line
                pass
        record = json.loads(last)
    except (OSError, ValueError, EOFError):
        return None
    if (
        isinstance(record, dict)
        and record.get("record") == "run"
        and record.get("run_id") == run_id
    ):
        return record | {"output": str(published)}
    return None


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
        self._assume = assume_settings(settings, run_id)
        self._entries: list[AccountEntry] = []
        self._org_access: OrgAccessEntry | None = None
        self._latencies = JobLatencies()  # learned once for every account this process sweeps

    async def run(self) -> OrgResult:
        started = datetime.now(UTC)
        base = self._base or await caller_session(self.settings)
        caller = await caller_account(base, self._assume)
        whole = listing = await self._list(base)
        if self.shard is not None:
            listing = listing.select(self.shard.owns)
        path = manifest_path(self.settings, self.run_id, self.shard, started)
        self._entries = [unswept_entry(a) for a in listing.not_swept]
        self._entries += [unswept_entry(a, excluded=True) for a in listing.excluded]
        todo = listing.to_sweep
        self.progress.accounts = len(todo)
        log.info(
            "collector.org.started",
            run_id=self.run_id,
            organization_id=listing.organization_id,
            accounts=len(todo),
            not_swept=len(self._entries),
            shard=str(self.shard) if self.shard else None,
        )
        async with (
            sts_client(base, self._assume) as sts,
            shared_iam(self.settings, base) as iam,
            anyio.create_task_group() as group,
        ):
            if self.settings.org_access_report and (self.shard is None or self.shard.index == 0):
                # Once per run (shard 0), beside the account sweeps, for the whole listing.
                group.start_soon(self._access_report, base, caller, whole, path)
            await self._sweep_accounts(todo, _Shared(base, caller, sts, iam))
        manifest = Manifest(
            run_id=self.run_id,
            organization_id=listing.organization_id,
            started=started,
            finished=datetime.now(UTC),
            accounts=tuple(sorted(self._entries, key=lambda entry: entry.account_id)),
            listed_accounts=listing.listed,
            shard=self.shard,
            org_access=self._org_access,
        )
        if self.shutdown.requested:
            return OrgResult(manifest, None)  # no manifest: the run is not over; --resume it
        await _publish_manifest(manifest, path, self.settings, base, caller)
        log.info("collector.org.finished", manifest=str(path), outcomes=manifest.outcomes())
        return OrgResult(manifest, path)

    async def _access_report(
        self, base: AioSession, caller: str, listing: AccountListing, manifest: str
    ) -> None:
        """The organizations access report (--org-access-report) into its org-level file."""
        location = output_location(manifest, self.run_id)
        if self.settings.resume:
            self._org_access = await anyio.to_thread.run_sync(
                finished_report, location, self.run_id
            )
            if self._org_access is not None:
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

    async def _sweep_accounts(self, todo: Sequence[Account], shared: _Shared) -> None:
        """A task per account, each started once the in-flight limit has room for it."""
        settings = self.settings
        in_flight = AccountsInFlight(
            InFlightPolicy(
                upper=settings.max_accounts_in_flight,
                memory_budget=memory_budget(settings.memory_budget_mb),
            )
        )
        async with anyio.create_task_group() as watching:
            watching.start_soon(in_flight.watch, name="accounts-in-flight")
            async with anyio.create_task_group() as accounts:
                in_flight.queued = len(todo)
                for account in todo:
                    await in_flight.acquire(account)
                    in_flight.queued -= 1
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
        if self.settings.resume:
            done = await anyio.to_thread.run_sync(
                _finished_output, self._template, account.id, self.run_id
            )
            if done is not None:
                log.info("collector.org.account_already_done", account_id=account.id)
                return replace(entry, outcome=done["status"], output=done["output"],
                                records=done.get("records") or {})  # fmt: skip
        try:
            credentials = await account_credentials(
                shared.base,
                account.id,
                caller_account=shared.caller,
                settings=self._assume,
                run_id=self.run_id,
                sts=shared.sts,
            )
        except AssumeRoleError as error:
            log.warning("collector.org.assume_role_denied", account_id=account.id, code=error.code)
            return replace(entry, outcome="assume_role_denied",
                            error=AccountError(error.code, error.message))  # fmt: skip
        counters, stats = self.progress.sweep_started(account.id)
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
                account=await account_iam(shared.iam, credentials, account.id),
                early_polls=False,  # the accounts in flight share the CPU: poll when due
            )
        except CollectorError as error:
            code = getattr(error, "code", type(error).__name__)
            log.warning("collector.org.account_failed", account_id=account.id, error=str(error))
            return replace(entry, outcome="failed", error=AccountError(code, str(error)))
        finally:
            self.progress.sweep_ended(account.id)
        return replace(
            entry,
            outcome=result.status,
            output=result.path or _part_of(self._template, account.id),
            records=result.run["records"],
        )


def _part_of(template: OutputTemplate, account_id: str) -> str | None:
    part = template.resumable(account_id=account_id)
    return None if part is None else os.fspath(part)
