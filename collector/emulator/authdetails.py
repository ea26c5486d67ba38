"""GetAccountAuthorizationDetails as IAM serves it: paged (MaxItems, opaque Marker, short pages),
filtered, policy documents URL-encoded, rendered from the account's snapshot.

moto answers the operation in one page whatever MaxItems says, and lists every AWS-managed
policy it loaded; IAM lists customer-managed policies and only the AWS-managed ones attached
in the account. Items are paged in one sequence: users, groups, roles, then policies, each
page holding the four lists (some empty).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from urllib.parse import quote
from xml.sax.saxutils import escape

from moto.iam.models import AWSManagedPolicy, Group, ManagedPolicy, Role, User

from collector.emulator import wire
from collector.emulator.directory import Directory, default_version
from collector.emulator.faults import FaultInjector
from collector.emulator.markers import decode_marker, encode_marker
from collector.emulator.operations import DEFAULT_MAX_ITEMS, Answer

OPERATION = "GetAccountAuthorizationDetails"
# The four lists of the answer, in paging order, and the Filter value that selects each.
LISTS = ("UserDetailList", "GroupDetailList", "RoleDetailList", "Policies")
FILTERS = ("User", "Group", "Role", "LocalManagedPolicy", "AWSManagedPolicy")
Item = tuple[str, str]  # (list name, rendered children of its <member>)


def encode_document(document: str) -> str:
    """A policy document as IAM sends it: URL-encoded per RFC 3986."""
    return quote(document, safe="")


def _inline(policies: Mapping[str, str]) -> list[str]:
    return [
        wire.element("PolicyName", name) + wire.element("PolicyDocument", encode_document(text))
        for name, text in sorted(policies.items())
    ]


def _attached(holder: User | Group | Role) -> list[str]:
    return [
        wire.element("PolicyName", policy.name) + wire.element("PolicyArn", arn)
        for arn, policy in sorted(holder.managed_policies.items())
    ]


def _user(directory: Directory, user: User) -> str:
    return "".join(
        (
            wire.element("Path", user.path),
            wire.element("UserName", user.name),
            wire.element("UserId", user.id),
            wire.element("Arn", user.arn),
            wire.element("CreateDate", user.create_date),
            wire.members("UserPolicyList", _inline(user.policies)),
            wire.members(
                "GroupList", (escape(group.name) for group in directory.groups_of(user.arn))
            ),
            wire.members("AttachedManagedPolicies", _attached(user)),
        )
    )


def _group(group: Group) -> str:
    return "".join(
        (
            wire.element("Path", group.path),
            wire.element("GroupName", group.name),
            wire.element("GroupId", group.id),
            wire.element("Arn", group.arn),
            wire.element("CreateDate", group.create_date),
            wire.members("GroupPolicyList", _inline(group.policies)),
            wire.members("AttachedManagedPolicies", _attached(group)),
        )
    )


def _role(role: Role) -> str:
    return "".join(
        (
            wire.element("Path", role.path),
            wire.element("RoleName", role.name),
            wire.element("RoleId", role.id),
            wire.element("Arn", role.arn),
            wire.element("CreateDate", role.create_date),
            wire.element(
                "AssumeRolePolicyDocument", encode_document(str(role.assume_role_policy_document))
            ),
            wire.members("InstanceProfileList", ()),
            wire.members("RolePolicyList", _inline(role.policies)),
            wire.members("AttachedManagedPolicies", _attached(role)),
        )
    )


def _policy(directory: Directory, policy: ManagedPolicy) -> str:
    versions = [
        "".join(
            (
                wire.element("Document", encode_document(str(version.document))),
                wire.element("VersionId", version.version_id),
                wire.element("IsDefaultVersion", bool(version.is_default)),
                wire.element("CreateDate", version.create_date),
            )
        )
        for version in policy.versions
    ]
    default = default_version(policy)
    return "".join(
        (
            wire.element("PolicyName", policy.name),
            wire.element("PolicyId", policy.id),
            wire.element("Arn", policy.arn),
            wire.element("Path", policy.path),
            wire.element("DefaultVersionId", default.version_id if default else None),
            wire.element("AttachmentCount", len(directory.holders(policy.arn))),
            wire.element("PermissionsBoundaryUsageCount", 0),
            wire.element("IsAttachable", True),
            wire.element("Description", policy.description or None),
            wire.element("CreateDate", policy.create_date),
            wire.element("UpdateDate", policy.update_date),
            wire.members("PolicyVersionList", versions),
        )
    )


def _items(directory: Directory, wanted: frozenset[str]) -> list[Item]:
    items: list[Item] = []
    if "User" in wanted:
        items += [
            ("UserDetailList", _user(directory, directory.users[a]))
            for a in sorted(directory.users)
        ]
    if "Group" in wanted:
        items += [
            ("GroupDetailList", _group(directory.groups[a])) for a in sorted(directory.groups)
        ]
    if "Role" in wanted:
        items += [("RoleDetailList", _role(directory.roles[a])) for a in sorted(directory.roles)]
    for arn in sorted(directory.policies):
        policy = directory.policies[arn]
        if isinstance(policy, AWSManagedPolicy):
            # IAM lists the AWS-managed policies in use in the account, not all of them.
            if "AWSManagedPolicy" in wanted and directory.holders(arn):
                items.append(("Policies", _policy(directory, policy)))
        elif "LocalManagedPolicy" in wanted:
            items.append(("Policies", _policy(directory, policy)))
    return items


class AuthorizationDetails:
    """Serves GetAccountAuthorizationDetails over one account's snapshot (params checked)."""

    def __init__(self, injector: FaultInjector) -> None:
        self.injector = injector
        self._lock = threading.Lock()
        # The rendered items of the last snapshot and filter: paging reads it once per page.
        self._cached: tuple[Directory, frozenset[str], list[Item]] | None = None

    def handle(self, directory: Directory, params: Mapping[str, str]) -> Answer:
        wanted = frozenset(
            value for key, value in params.items() if key.startswith("Filter.member.")
        ) or frozenset(FILTERS)
        items = self._rendered(directory, wanted)
        offset = 0
        marker = params.get("Marker")
        if marker is not None:
            found = decode_marker(marker, OPERATION, low=1, high=len(items))
            if found is None:
                return Answer(400, wire.error("InvalidInput", "Invalid Marker.", 400))
            offset = found
        end = offset + self.injector.page_size(int(params.get("MaxItems", DEFAULT_MAX_ITEMS)))
        page = items[offset:end]
        more = end < len(items)
        parts = [
            wire.members(name, (inner for kind, inner in page if kind == name)) for name in LISTS
        ]
        parts.append(wire.element("IsTruncated", more))
        parts.append(wire.element("Marker", encode_marker(OPERATION, end) if more else None))
        return Answer(200, wire.response(OPERATION, parts))

    def _rendered(self, directory: Directory, wanted: frozenset[str]) -> list[Item]:
        with self._lock:
            cached = self._cached
        if cached is not None and cached[0] is directory and cached[1] == wanted:
            return cached[2]
        items = _items(directory, wanted)
        with self._lock:
            self._cached = (directory, wanted, items)
        return items
