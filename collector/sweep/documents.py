"""Policy documents stage (--policy-documents): one policy_document record per policy."""

# GetAccountAuthorizationDetails is paged once per account, with no Filter: every user, group
# and role with its inline and attached policies, and the managed policies IAM lists with it
# (customer-managed ones, and AWS-managed ones attached in the account). A managed policy's
# `attached_to` is only known once every page is read, so the records are sent at the end, as
# one set: a stop in the middle sends none (and `--resume` redoes the set whole).
# Trust policies and permissions boundaries grant nothing themselves and are not written as
# inline documents; a boundary is a managed policy and has its own line like any other.

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from anyio.abc import ObjectSendStream

from collector.aws.iam import AUTHORIZATION_DETAILS
from collector.errors import AwsError
from collector.models import Record, policy_document_record
from collector.sweep.env import StageEnv

# (list of holders, the list of each holder's inline policies)
_HOLDERS = (
    ("UserDetailList", "UserPolicyList"),
    ("GroupDetailList", "GroupPolicyList"),
    ("RoleDetailList", "RolePolicyList"),
)


def _default_version(policy: Mapping[str, Any]) -> Mapping[str, Any]:
    default = policy.get("DefaultVersionId")
    version: Mapping[str, Any]
    for version in policy.get("PolicyVersionList", []):
        if version.get("VersionId") == default or (
            default is None and version.get("IsDefaultVersion")
        ):
            return version
    raise AwsError(
        AUTHORIZATION_DETAILS,
        "MalformedResponse",
        f"policy {policy.get('Arn')} has no default version ({default}) in its PolicyVersionList",
    )


def policy_records(env: StageEnv, pages: list[dict[str, Any]]) -> list[Record]:
    """The records of every page read: managed policies by ARN, then inline ones as listed."""
    attached: dict[str, set[str]] = {}
    inline: list[Record] = []
    managed: dict[str, Mapping[str, Any]] = {}
    for page in pages:
        for listing, inline_list in _HOLDERS:
            for holder in page.get(listing, []):
                arn = str(holder["Arn"])
                for policy in holder.get("AttachedManagedPolicies", []):
                    attached.setdefault(str(policy["PolicyArn"]), set()).add(arn)
                inline.extend(
                    policy_document_record(
                        env.run,
                        policy_arn=None,
                        owner_arn=arn,
                        policy_name=str(policy["PolicyName"]),
                        version_id=None,  # inline policies have no versions
                        document=policy["PolicyDocument"],
                        attached_to=[arn],
                    )
                    for policy in holder.get(inline_list, [])
                )
        for policy in page.get("Policies", []):
            managed[str(policy["Arn"])] = policy
    records = []
    for arn in sorted(managed):
        policy = managed[arn]
        version = _default_version(policy)
        records.append(
            policy_document_record(
                env.run,
                policy_arn=arn,
                owner_arn=None,
                policy_name=str(policy["PolicyName"]),
                version_id=str(version["VersionId"]),
                document=version["Document"],
                attached_to=sorted(attached.get(arn, ())),
            )
        )
    return records + inline


async def policy_documents(env: StageEnv, records: ObjectSendStream[Record]) -> None:
    """Read every page, then send the whole set of policy_document records."""
    async with records:
        pages = [page async for page in env.api.authorization_details()]
        for record in policy_records(env, pages):
            await records.send(record)
