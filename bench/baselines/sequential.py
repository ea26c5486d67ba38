"""Peer (a): the sequential loop users write around the AWS CLI: generate, poll every 2 s, fetch.

What it follows: the loops kept next to the AWS CLI reference pages, e.g.
khooks703/iAmWhoIAM `generate_access.sh` (`generate-service-last-accessed-details`, `sleep 2`,
`get-service-last-accessed-details --job-id`), with the poll-until-done loop of the issue:

    for arn in $(aws iam list-roles ...; aws iam list-users ...; ...); do
      job=$(aws iam generate-service-last-accessed-details --arn "$arn" --query JobId ...)
      while sleep 2; [ "$(aws iam get-service-last-accessed-details --job-id "$job" \
              --query JobStatus ...)" = IN_PROGRESS ]; do :; done   # the last answer is kept
    done

The numbers it uses: one principal at a time; 2 s before each poll; the AWS CLI v1 defaults
(boto3's: legacy retry mode, 5 attempts); `get-service-last-accessed-details` without
`--max-items`, so the API's default page of 100 services and no `Marker` (the CLI has no
paginator for it): reports past 100 services are cut. No entity rows. The `list-*` commands
auto-paginate, as the CLI does. Run through boto3 in one process, which flatters the loop:
each real `aws` invocation also pays the CLI's start-up.
"""

from __future__ import annotations

import time
from typing import Any

# No boto3 stubs in the dev extras (types-aiobotocore covers aiobotocore only).
import boto3  # type: ignore[import-untyped]

from bench.baselines.common import (
    LISTINGS,
    parse_args,
    principal_record,
    read_arns,
    report,
    service_record,
    write_records,
)

POLL_SECONDS = 2.0


def list_principals(iam: Any) -> list[str]:
    """Every user, group, role and customer-managed policy, as `aws iam list-*` prints them."""
    arns: list[str] = []
    for method, key, params in LISTINGS:
        for page in iam.get_paginator(method).paginate(**params):
            arns.extend(item["Arn"] for item in page[key])
    return arns


def main() -> None:
    """Sweep the principals one by one and write what the loop would have saved."""
    args = parse_args(__doc__ or "")
    wanted = read_arns(args.arns)
    iam = boto3.session.Session().client(
        "iam", endpoint_url=args.endpoint_url, region_name="us-east-1"
    )
    jobs = polls = 0
    for arn in list_principals(iam):
        if wanted is not None and arn not in wanted:
            continue
        job_id = iam.generate_service_last_accessed_details(Arn=arn)["JobId"]
        jobs += 1
        while True:
            time.sleep(POLL_SECONDS)
            details = iam.get_service_last_accessed_details(JobId=job_id)
            polls += 1
            if details["JobStatus"] != "IN_PROGRESS":
                break
        if details["JobStatus"] == "COMPLETED":
            records = [service_record(arn, item) for item in details["ServicesLastAccessed"]]
            write_records(args.output, [*records, principal_record(arn)])
    report(jobs=jobs, polls=polls)


if __name__ == "__main__":
    main()
