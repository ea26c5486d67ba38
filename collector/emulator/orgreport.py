"""One organizations access report: the services SCPs allow an entity, and their last use."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from moto.iam.models import Role, User

from collector.emulator.activity import Access, ActivityModel
from collector.emulator.catalog import SERVICES
from collector.emulator.directory import Directory, PrincipalKind
from collector.emulator.organization import SCP, OrgAccount, OrgLayout
from collector.emulator.permissions import document_grants, merge_grants


@dataclass(frozen=True, slots=True)
class AccessRow:
    """One AccessDetails item."""

    namespace: str
    name: str
    last: Access | None
    entity_path: str | None  # the account whose principal used the service last
    total: int  # accounts with a principal that used it


@dataclass(frozen=True, slots=True)
class OrgReport:
    """A completed report: rows by namespace, ascending."""

    entity_path: str
    rows: tuple[AccessRow, ...]

    @property
    def accessible(self) -> int:
        """NumberOfServicesAccessible."""
        return len(self.rows)

    @property
    def not_accessed(self) -> int:
        """NumberOfServicesNotAccessed."""
        return sum(1 for row in self.rows if row.last is None)


class BadEntityPath(ValueError):
    """A well-formed entity path that names nothing in this organisation."""


class UnknownPolicy(LookupError):
    """An OrganizationsPolicyId that names no SCP of this organisation."""


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def scp_effects(document: str) -> tuple[frozenset[str], frozenset[str]]:
    """The namespaces one SCP allows, and those it denies wholly.

    A Deny of `svc:*` (or `*`) denies a service; a Deny of some actions, or one with a
    Condition, leaves the service listed, as the report lists services, not actions.
    """
    allowed = frozenset(document_grants(document))
    try:
        parsed = json.loads(document)
    except ValueError:
        return frozenset(), frozenset()
    denied: set[str] = set()
    statements = parsed.get("Statement") if isinstance(parsed, dict) else None
    for statement in _as_list(statements):
        if not isinstance(statement, dict) or statement.get("Effect") != "Deny":
            continue
        if "Condition" in statement:
            continue
        for action in _as_list(statement.get("Action")):
            if not isinstance(action, str):
                continue
            service, _, name = action.partition(":")
            if action == "*" or name == "*":
                denied.update(fnmatch.filter(SERVICES, service.lower()))
    return allowed, frozenset(denied)


def scp_services(document: str) -> frozenset[str]:
    """The namespaces one SCP on its own allows."""
    allowed, denied = scp_effects(document)
    return allowed - denied


class Scps:
    """The SCPs attached to each target (root, OU, account), read from moto's Organizations."""

    def __init__(self, attached: Mapping[str, Sequence[tuple[str, str]]]) -> None:
        self.attached = attached  # target id -> [(policy id, content)]

    @classmethod
    def read(cls, backend: Any) -> Scps:
        """Snapshot the SCP attachments of an Organizations backend."""
        attached: dict[str, list[tuple[str, str]]] = {}
        for target in [*backend.ou, *backend.accounts]:
            attached[target.id] = [
                (policy.id, str(policy.content))
                for policy in target.attached_policies
                if policy.type == SCP
            ]
        return cls(attached)

    def policy(self, policy_id: str) -> str:
        """The content of an attached SCP; raises UnknownPolicy."""
        for policies in self.attached.values():
            for found_id, content in policies:
                if found_id == policy_id:
                    return content
        raise UnknownPolicy(policy_id)

    def allowed(self, chain: Iterable[str]) -> frozenset[str]:
        """What the SCPs along a chain allow: every level must allow a service, and no SCP
        on the chain may deny it."""
        result = frozenset(SERVICES)
        denied: set[str] = set()
        for target in chain:
            level: set[str] = set()
            for _, content in self.attached.get(target, ()):
                allows, denies = scp_effects(content)
                level |= allows
                denied |= denies
            result &= level
        return result - denied

    def applies(self, policy_id: str, chain: Iterable[str]) -> bool:
        """Whether the SCP is attached anywhere along the chain."""
        return any(
            found_id == policy_id
            for target in chain
            for found_id, _ in self.attached.get(target, ())
        )


def account_usage(directory: Directory, activity: ActivityModel) -> dict[str, Access]:
    """An account's last use of each namespace by any user or role its policies allow."""
    usage: dict[str, tuple[Access, str]] = {}
    holders: list[tuple[PrincipalKind, User | Role]] = [
        *(("user", user) for user in directory.users.values()),
        *(("role", role) for role in directory.roles.values()),
    ]
    for kind, holder in holders:
        grants = merge_grants(directory.documents(kind, holder))
        for namespace in grants:
            access = activity.service_access(holder.arn, namespace)
            if access is None:
                continue
            best = usage.get(namespace)
            if best is None or (access.time, best[1]) > (best[0].time, holder.arn):
                usage[namespace] = (access, holder.arn)
    return {namespace: found[0] for namespace, found in usage.items()}


@dataclass(frozen=True, slots=True)
class Target:
    """What an entity path names: its chain of target ids and the accounts in its scope."""

    path: str
    chain: tuple[str, ...]  # root, OUs…, and the account for an account path
    accounts: tuple[OrgAccount, ...]
    management: bool  # the path names the management account


def resolve(layout: OrgLayout, path: str) -> Target:
    """The target of an entity path; raises BadEntityPath."""
    parts = path.rstrip("/").split("/")
    if len(parts) < 2 or parts[0] != layout.organization_id or parts[1] != layout.root_id:
        raise BadEntityPath(path)
    chain = [layout.root_id]
    for part in parts[2:-1]:
        unit = layout.unit(part)
        if unit is None or unit.parent_id != chain[-1]:
            raise BadEntityPath(path)
        chain.append(part)
    last = parts[-1]
    if len(parts) > 2:
        account = layout.account(last)
        unit = layout.unit(last)
        parent = account.parent_id if account else unit.parent_id if unit else None
        if parent != chain[-1]:
            raise BadEntityPath(path)
        if account is not None:
            return Target(account.path, (*chain, account.id), (account,), account.management)
        chain.append(last)
    canonical = "/".join(parts)
    members = tuple(
        a for a in layout.accounts if not a.management and (a.path.startswith(canonical + "/"))
    )
    return Target(canonical, tuple(chain), members, False)


def build_org_report(
    layout: OrgLayout,
    scps: Scps,
    usage_of: Callable[[str], Mapping[str, Access]],
    path: str,
    policy_id: str | None = None,
) -> OrgReport:
    """The report of an entity path (and optionally one SCP); raises BadEntityPath or
    UnknownPolicy."""
    target = resolve(layout, path)
    accounts: Sequence[OrgAccount] = target.accounts
    if target.management:
        allowed = frozenset(SERVICES)  # SCPs do not limit the management account
    elif policy_id is not None:
        allowed = scp_services(scps.policy(policy_id))
        accounts = [a for a in accounts if scps.applies(policy_id, _chain_of(layout, a))]
    else:
        allowed = scps.allowed(target.chain)
    rows = []
    usages = [(account, usage_of(account.id)) for account in accounts]
    for namespace in sorted(allowed):
        used = [(account, u[namespace]) for account, u in usages if namespace in u]
        latest = max(used, key=lambda pair: (pair[1].time, pair[0].id), default=None)
        rows.append(
            AccessRow(
                namespace=namespace,
                name=SERVICES[namespace],
                last=latest[1] if latest else None,
                entity_path=latest[0].path if latest else None,
                total=len(used),
            )
        )
    return OrgReport(target.path, tuple(rows))


def _chain_of(layout: OrgLayout, account: OrgAccount) -> list[str]:
    chain = [account.id]
    parent = layout.unit(account.parent_id)
    while parent is not None:
        chain.append(parent.id)
        parent = layout.unit(parent.parent_id) if parent.parent_id else None
    return chain
