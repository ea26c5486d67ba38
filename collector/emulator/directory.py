"""A read-only snapshot of moto's IAM state, indexed for building reports."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from moto.iam.models import AWSManagedPolicy, Group, IAMBackend, ManagedPolicy, Role, User

PrincipalKind = Literal["user", "group", "role", "policy"]
EntityType = Literal["USER", "ROLE", "GROUP"]

# arn:aws:iam::<account|aws>:<kind><path><name>; the path is "/" or "/a/b/".
ARN_PATTERN = re.compile(
    r"^arn:aws:iam::(?P<account>[0-9]{12}|aws):(?P<kind>user|group|role|policy)(?P<rest>/.*[^/])$"
)


@dataclass(frozen=True, slots=True)
class Entity:
    """A user, role or group as a report lists it (EntityInfo)."""

    arn: str
    name: str
    type: EntityType
    id: str
    path: str


@dataclass(frozen=True, slots=True)
class IamPrincipal:
    """Something a report can be generated for: a user, group, role or managed policy."""

    arn: str
    kind: PrincipalKind
    name: str
    id: str
    path: str


class UnknownPrincipal(LookupError):
    """The ARN is well formed but names nothing in the account."""


class MalformedArn(ValueError):
    """The ARN is not one of a user, group, role or managed policy."""


def _entity(obj: User | Role | Group) -> Entity:
    kind: EntityType = (
        "USER" if isinstance(obj, User) else "ROLE" if isinstance(obj, Role) else "GROUP"
    )
    return Entity(arn=obj.arn, name=obj.name, type=kind, id=obj.id, path=obj.path)


def default_version(policy: ManagedPolicy) -> Any:
    """The policy's default version (moto's PolicyVersion), or None."""
    for version in policy.versions:
        if version.is_default:
            return version
    return None


def _document(policy: ManagedPolicy) -> str:
    version = default_version(policy)
    return "{}" if version is None else str(version.document)


class Directory:
    """Users, groups, roles and managed policies of one account, with reverse indexes.

    Built once and reused until an IAM call changes the account, because a
    scan over 10,000 principals per report would dominate the cost of a sweep.
    """

    def __init__(self, backend: IAMBackend) -> None:
        self.users: dict[str, User] = {u.arn: u for u in backend.users.values()}
        self.groups: dict[str, Group] = {g.arn: g for g in backend.groups.values()}
        self.roles: dict[str, Role] = {r.arn: r for r in backend.roles.values()}
        self.policies: dict[str, ManagedPolicy] = dict(backend.managed_policies)
        self._groups_of_user: dict[str, list[Group]] = {}
        for group in self.groups.values():
            for user in group.users:
                self._groups_of_user.setdefault(user.arn, []).append(group)
        self._attached: dict[str, list[User | Role | Group]] = {}
        holders: list[User | Role | Group] = [
            *self.users.values(),
            *self.roles.values(),
            *self.groups.values(),
        ]
        for holder in holders:
            for arn in holder.managed_policies:
                self._attached.setdefault(arn, []).append(holder)

    def lookup(self, arn: str) -> tuple[PrincipalKind, User | Group | Role | ManagedPolicy]:
        """The principal an ARN names; raises MalformedArn or UnknownPrincipal."""
        match = ARN_PATTERN.match(arn)
        if match is None:
            raise MalformedArn(arn)
        kind: PrincipalKind = match["kind"]  # type: ignore[assignment]
        if match["account"] == "aws" and kind != "policy":
            raise MalformedArn(arn)
        found: User | Group | Role | ManagedPolicy | None
        if kind == "user":
            found = self.users.get(arn)
        elif kind == "group":
            found = self.groups.get(arn)
        elif kind == "role":
            found = self.roles.get(arn)
        else:
            found = self.policies.get(arn)
        if found is None:
            raise UnknownPrincipal(arn)
        return kind, found

    def principal(self, arn: str) -> IamPrincipal:
        """The report subject an ARN names."""
        kind, obj = self.lookup(arn)
        return IamPrincipal(arn=arn, kind=kind, name=obj.name, id=obj.id, path=obj.path)

    def principals(self, aws_managed_policies: bool) -> Iterator[IamPrincipal]:
        """Every report subject: users, groups, roles, customer-managed policies, and the
        attached AWS-managed policies when asked."""
        for index in (self.users, self.groups, self.roles):
            for arn in sorted(index):
                yield self.principal(arn)
        for arn in sorted(self.policies):
            policy = self.policies[arn]
            # AWS-managed policies count only when asked for and attached (OnlyAttached).
            aws = isinstance(policy, AWSManagedPolicy)
            if aws and not (aws_managed_policies and self._attached.get(arn)):
                continue
            yield self.principal(arn)

    def documents(self, kind: PrincipalKind, obj: User | Group | Role | ManagedPolicy) -> list[str]:
        """The permission policy documents that apply to a principal."""
        if isinstance(obj, ManagedPolicy):
            return [_document(obj)]
        holders: list[User | Group | Role] = [obj]
        if isinstance(obj, User):
            holders.extend(self._groups_of_user.get(obj.arn, ()))
        documents: list[str] = []
        for holder in holders:
            documents.extend(str(text) for text in holder.policies.values())
            documents.extend(_document(policy) for policy in holder.managed_policies.values())
        return documents

    def holders(self, policy_arn: str) -> list[User | Role | Group]:
        """The users, roles and groups a managed policy is attached to."""
        return list(self._attached.get(policy_arn, ()))

    def groups_of(self, user_arn: str) -> list[Group]:
        """The groups a user is a member of."""
        return list(self._groups_of_user.get(user_arn, ()))

    def report_entities(self, obj: User | Group | Role | ManagedPolicy) -> list[Entity]:
        """The entities a WithEntities report lists: members, attachments, or itself."""
        if isinstance(obj, ManagedPolicy):
            return [_entity(holder) for holder in self._attached.get(obj.arn, ())]
        if isinstance(obj, Group):
            return [_entity(user) for user in obj.users]
        return [_entity(obj)]

    def members(self, entity: Entity) -> list[Entity]:
        """The users and roles whose own use counts for an entity: a group's members, or itself."""
        if entity.type != "GROUP":
            return [entity]
        return [_entity(user) for user in self.groups[entity.arn].users]
