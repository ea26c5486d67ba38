"""Peer (b): Netflix Aardvark's updater: start every job, then poll them with no sleep.

A port, on boto3, of Netflix-Skunkworks/aardvark `aardvark/updater/__init__.py`
(`AccountToUpdate._get_arns`, `_generate_job_ids`, `_get_job_results`), its thread pool in
`aardvark/manage.py` (`UpdateAccountThread`, `DEFAULT_NUM_THREADS = 5`) and the
`rate_limited` decorator of Netflix-Skunkworks/cloudaux `cloudaux/aws/decorators.py`
(Throttling -> sleep 1, 2, 4, 4, ... s, `max_delay=4`, no attempt limit, state shared by
every caller of the decorated method), plus cloudaux `list_roles`/`list_users` (Marker loops).

What the real code does, kept here as it is:
- 5 threads take whole accounts from a queue: one account is swept by one thread.
- All jobs are generated first (one call after another), then read.
- `job_queue.pop()` takes the last job and an IN_PROGRESS job is appended again, so it is
  polled again at once with no sleep (the "hang back" `time.sleep(1)` never runs: the queue
  is never empty right after the append). Gives up when no job completed for 5 minutes.
- `get_service_last_accessed_details(JobId=...)` without MaxItems or Marker: the first page
  of 100 services only. No entity rows. boto3's default client (legacy retries, 5 attempts)
  under the decorator, as cloudaux's `boto3_cached_conn` builds it.
What differs: no STS assume-role (the emulator is the account), no SWAG, no database (the
results go to a JSONL file at the end, where Aardvark persists them at the end too).
"""

from __future__ import annotations

import functools
import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

# No boto3 stubs in the dev extras (types-aiobotocore covers aiobotocore only).
import boto3  # type: ignore[import-untyped]
import botocore.exceptions

from bench.baselines.common import (
    parse_args,
    principal_record,
    read_arns,
    report,
    service_record,
    write_records,
)

log = logging.getLogger("aardvark")

RATE_LIMITING_ERRORS = ["Throttling", "RequestLimitExceeded", "SlowDown", "RequestThrottled"]
NUM_THREADS = 5
MAX_JOB_WAIT = 5 * 60
F = TypeVar("F", bound=Callable[..., Any])


def rate_limited(max_attempts: int | None = None, max_delay: int = 4) -> Callable[[F], F]:
    """cloudaux's decorator: sleep 1, 2, 4 ... s after each throttle; the state is shared."""

    def decorator(f: F) -> F:
        metadata = {"count": 0, "delay": 0}

        @functools.wraps(f)
        def decorated(*args: Any, **kwargs: Any) -> Any:
            def increase_delay(error: Exception) -> None:
                if metadata["delay"] == 0:
                    metadata["delay"] = 1
                elif metadata["delay"] < max_delay:
                    metadata["delay"] *= 2
                if max_attempts and metadata["count"] > max_attempts:
                    raise error

            metadata["count"] = 0
            while True:
                metadata["count"] += 1
                if metadata["delay"] > 0:
                    time.sleep(metadata["delay"])
                try:
                    value = f(*args, **kwargs)
                    metadata["delay"] = 0
                    return value
                except botocore.exceptions.ClientError as error:
                    if error.response["Error"]["Code"] not in RATE_LIMITING_ERRORS:
                        raise
                    increase_delay(error)

        return decorated  # type: ignore[return-value]

    return decorator


class Counts:
    """Calls the bench wants to know about (Aardvark itself only logs)."""

    def __init__(self) -> None:
        self.jobs = 0
        self.polls = 0
        self.unfinished = 0


class AccountToUpdate:
    """Aardvark's per-account updater."""

    def __init__(self, iam: Any, arn_list: list[str], counts: Counts) -> None:
        self.iam = iam
        self.arn_list = arn_list
        self.counts = counts
        self.max_access_advisor_job_wait = MAX_JOB_WAIT

    def update_account(self) -> tuple[int, dict[str, list[dict[str, Any]]] | None]:
        arns = self._get_arns()
        try:
            details = self._call_access_advisor(self.iam, list(arns))
        except Exception:
            log.exception("Failed to call access advisor")
            return 255, None
        return 0, details

    def _get_arns(self) -> set[str] | list[str]:
        account_arns: set[str] = set()
        for role in _list_all(self.iam.list_roles, "Roles"):
            account_arns.add(role["Arn"])
        for user in _list_all(self.iam.list_users, "Users"):
            account_arns.add(user["Arn"])
        for page in self.iam.get_paginator("list_policies").paginate(Scope="Local"):
            for policy in page["Policies"]:
                account_arns.add(policy["Arn"])
        for page in self.iam.get_paginator("list_groups").paginate():
            for group in page["Groups"]:
                account_arns.add(group["Arn"])
        result: set[str] = set()
        for arn in self.arn_list:
            if arn.lower() == "all":
                return account_arns
            if arn not in account_arns:
                continue
            result.add(arn)
        return list(result)

    def _call_access_advisor(self, iam: Any, arns: list[str]) -> dict[str, Any]:
        jobs = self._generate_job_ids(iam, arns)
        return self._get_job_results(iam, jobs)

    @rate_limited()
    def _generate_service_last_accessed_details(self, iam: Any, arn: str) -> str:
        self.counts.jobs += 1
        job_id: str = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        return job_id

    @rate_limited()
    def _get_service_last_accessed_details(self, iam: Any, job_id: str) -> dict[str, Any]:
        self.counts.polls += 1
        details: dict[str, Any] = iam.get_service_last_accessed_details(JobId=job_id)
        return details

    def _generate_job_ids(self, iam: Any, arns: list[str]) -> dict[str, str]:
        jobs: dict[str, str] = {}
        for role_arn in arns:
            try:
                job_id = self._generate_service_last_accessed_details(iam, role_arn)
                jobs[job_id] = role_arn
            except Exception:
                log.exception("Could not gather data from %s.", role_arn)
        return jobs

    def _get_job_results(self, iam: Any, jobs: dict[str, str]) -> dict[str, Any]:
        access_details: dict[str, Any] = {}
        job_queue = list(jobs.keys())
        last_job_completion_time = time.time()
        while job_queue:
            if time.time() - last_job_completion_time > self.max_access_advisor_job_wait:
                self.counts.unfinished = len(job_queue)
                break
            job_id = job_queue.pop()
            role_arn = jobs[job_id]
            try:
                details = self._get_service_last_accessed_details(iam, job_id)
            except Exception:
                log.exception("Could not gather data from %s.", role_arn)
                continue
            if details["JobStatus"] == "IN_PROGRESS":
                job_queue.append(job_id)
                if not job_queue:  # never true right after the append: kept as in Aardvark
                    time.sleep(1)
                continue
            if details["JobStatus"] != "COMPLETED":
                continue
            last_job_completion_time = time.time()
            # Aardvark turns LastAuthenticated into epoch ms here; the raw items are kept
            # so that the bench can score them against the truth.
            access_details[role_arn] = list(details.get("ServicesLastAccessed", []))
        return access_details


def _list_all(method: Callable[..., dict[str, Any]], key: str) -> list[dict[str, Any]]:
    """cloudaux's list_roles / list_users: follow Marker, default page size."""
    items: list[dict[str, Any]] = []
    marker: dict[str, str] = {}
    while True:
        response = method(**marker)
        items.extend(response[key])
        if response["IsTruncated"]:
            marker["Marker"] = response["Marker"]
        else:
            return items


class Updater:
    """manage.py's `update`: a queue of accounts and NUM_THREADS threads draining it."""

    def __init__(self, iam: Any, arns: list[str], output: Path, counts: Counts) -> None:
        self.accounts: queue.Queue[list[str]] = queue.Queue()
        self.lock = threading.Lock()
        self.done = False
        self.iam = iam
        self.output = output
        self.counts = counts
        self.accounts.put(arns)

    def worker(self) -> None:
        while not self.done:
            self.lock.acquire()
            if not self.accounts.empty():
                arns = self.accounts.get()
                self.lock.release()
                code, data = AccountToUpdate(self.iam, arns, self.counts).update_account()
                if code != 0:  # Aardvark puts a failed account back on the queue
                    with self.lock:
                        self.accounts.put(arns)
                    continue
                # store_role_data: the whole account is persisted at the end.
                for arn, services in (data or {}).items():
                    rows = [service_record(arn, item) for item in services]
                    write_records(self.output, [*rows, principal_record(arn)])
            else:
                self.lock.release()

    def run(self) -> None:
        threads = [threading.Thread(target=self.worker) for _ in range(NUM_THREADS)]
        for thread in threads:
            thread.start()
        while not self.accounts.empty():
            pass  # manage.py busy-waits here too
        self.done = True
        for thread in threads:
            thread.join()


def main() -> None:
    """`aardvark update -a ACCOUNT -r all` (or `-r ARN,...` for a subset)."""
    args = parse_args(__doc__ or "")
    wanted = read_arns(args.arns)
    iam = boto3.session.Session().client(
        "iam", endpoint_url=args.endpoint_url, region_name="us-east-1"
    )
    counts = Counts()
    arns = ["all"] if wanted is None else sorted(wanted)
    Updater(iam, arns, args.output, counts).run()
    report(jobs=counts.jobs, polls=counts.polls, unfinished=counts.unfinished)


if __name__ == "__main__":
    main()
