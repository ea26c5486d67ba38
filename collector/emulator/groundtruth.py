"""The oracle: the schema-1 records a correct collector must write for the seeded account.

Written independently of `collector.models` on purpose: tests check the
collector's record builders against it. Run-specific fields (run_id, job_id,
job_created, job_completed) and error messages are left out.
"""

from __future__ import annotations

import json
from typing import Any

from moto.iam.models import AWSManagedPolicy

from collector.emulator.activity import ActivityModel
from collector.emulator.directory import Directory, IamPrincipal, default_version
from collector.emulator.faults import Fate, Faults, failure, fate
from collector.emulator.reports import GRANULARITIES, Report, build_report
from collector.emulator.wire import timestamp
from collector.models import EntitiesMode

Record = dict[str, Any]


def _common(kind: str, account_id: str, principal: IamPrincipal) -> Record:
    return {
        "record": kind,
        "schema": 1,
        "account_id": account_id,
        "principal_arn": principal.arn,
        "principal_type": principal.kind,
    }


def _error(account_id: str, principal: IamPrincipal, stage: str, code: str) -> Record:
    return _common("error", account_id, principal) | {
        "stage": stage,
        "code": code,
        "service_namespace": None,
    }


def _records(account_id: str, report: Report, entities: EntitiesMode) -> list[Record]:
    principal = report.principal
    records: list[Record] = []
    for row in report.services:
        tracked = None
        if row.tracked is not None:
            tracked = [
                {
                    "action_name": action.name,
                    "last_accessed_time": timestamp(action.last.time) if action.last else None,
                    "last_accessed_entity": action.entity,
                    "last_accessed_region": action.last.region if action.last else None,
                }
                for action in row.tracked
            ]
        records.append(
            _common("service", account_id, principal)
            | {
                "service_namespace": row.namespace,
                "service_name": row.name,
                "last_authenticated": timestamp(row.last.time) if row.last else None,
                "last_authenticated_entity": row.entity,
                "last_authenticated_region": row.last.region if row.last else None,
                "total_authenticated_entities": row.total,
                "tracked_actions": tracked,
            }
        )
    entity_count = 0
    for row in report.services:
        wanted = entities == "all" or (
            entities == "accessed"
            and principal.kind in ("group", "policy")
            and row.last is not None
        )
        if not wanted:
            continue
        for item in report.entities.get(row.namespace, ()):
            info = item.entity
            entity_count += 1
            records.append(
                _common("entity", account_id, principal)
                | {
                    "service_namespace": row.namespace,
                    "entity_arn": info.arn,
                    "entity_name": info.name,
                    "entity_type": info.type.lower(),
                    "entity_id": info.id,
                    "entity_path": info.path,
                    "last_authenticated": timestamp(item.last_authenticated)
                    if item.last_authenticated
                    else None,
                }
            )
    records.append(
        _common("principal", account_id, principal)
        | {
            "principal_name": principal.name,
            "principal_id": principal.id,
            "principal_path": principal.path,
            "job_type": report.granularity,
            "services": len(report.services),
            "services_accessed": sum(1 for row in report.services if row.last is not None),
            "entities": entity_count,
        }
    )
    return records


def policy_documents(directory: Directory, account_id: str) -> list[Record]:
    """The policy_document records of the account: customer-managed and attached AWS-managed
    policies (by ARN), then the inline policies of users, groups and roles."""
    records: list[Record] = []
    common = {"record": "policy_document", "schema": 1, "account_id": account_id}
    for arn in sorted(directory.policies):
        policy = directory.policies[arn]
        holders = sorted(holder.arn for holder in directory.holders(arn))
        if isinstance(policy, AWSManagedPolicy) and not holders:
            continue
        version = default_version(policy)
        records.append(
            common
            | {
                "policy_arn": arn,
                "owner_arn": None,
                "policy_name": policy.name,
                "version_id": version.version_id,
                "document": json.loads(str(version.document)),
                "attached_to": holders,
            }
        )
    for index in (directory.users, directory.groups, directory.roles):
        for owner in sorted(index):
            for name, text in sorted(index[owner].policies.items()):
                records.append(
                    common
                    | {
                        "policy_arn": None,
                        "owner_arn": owner,
                        "policy_name": name,
                        "version_id": None,
                        "document": json.loads(str(text)),
                        "attached_to": [owner],
                    }
                )
    return records


def ground_truth(
    directory: Directory,
    activity: ActivityModel,
    faults: Faults,
    account_id: str,
    granularity: str = "SERVICE_LEVEL",
    entities: EntitiesMode = "accessed",
    aws_managed_policies: bool = False,
    with_policy_documents: bool = False,
) -> list[Record]:
    """Every record of a complete sweep, principal by principal in a fixed order; with
    `with_policy_documents`, the account's policy_document records after them."""
    if granularity not in GRANULARITIES:
        raise ValueError(f"granularity must be one of {GRANULARITIES}")
    if entities not in ("none", "accessed", "all"):
        raise ValueError("entities must be none, accessed or all")
    records: list[Record] = []
    for principal in directory.principals(aws_managed_policies):
        outcome = fate(faults, activity.seed, principal.arn)
        if outcome is Fate.DELETED:
            records.append(_error(account_id, principal, "generate", "NoSuchEntity"))
        elif outcome is Fate.FAILED:
            code, _ = failure(activity.seed, principal.arn)
            records.append(_error(account_id, principal, "poll", code))
        elif outcome is Fate.STUCK:
            records.append(_error(account_id, principal, "poll", "JobTimeout"))
        else:
            report = build_report(directory, activity, principal.arn, granularity)
            records.extend(_records(account_id, report, entities))
    if with_policy_documents:
        records.extend(policy_documents(directory, account_id))
    return records
