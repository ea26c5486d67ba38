"""The emulated AWS Organization: its options, its layout, and writing it into moto's state."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.iam.models import IAMBackend
from moto.organizations.models import (
    FakeAccount,
    FakeOrganization,
    FakeOrganizationalUnit,
    FakePolicy,
    FakeRoot,
    OrganizationsBackend,
    organizations_backends,
)

from collector.emulator.catalog import SERVICES
from collector.emulator.faults import Faults

PARTITION = "aws"
REGION = "us-east-1"
FULL_ACCESS_POLICY_ID = "p-FullAWSAccess"  # the id AWS gives the default SCP
SCP = "SERVICE_CONTROL_POLICY"
_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"
# (name, parent name or None for the root): a nested OU and a flat one.
_UNITS = (("workloads", None), ("prod", "workloads"), ("dev", "workloads"), ("sandbox", None))
# Where member accounts go, in turn; None is the root itself.
_PLACEMENT = ("prod", "dev", "sandbox", None)
_JOINED = datetime(2021, 1, 4, 9, 0, 0)  # naive UTC, as moto keeps it
_AUDIT_ACTIONS = (
    "iam:GenerateServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetails",
    "iam:GetServiceLastAccessedDetailsWithEntities",
    "iam:ListUsers",
    "iam:ListGroups",
    "iam:ListRoles",
    "iam:ListPolicies",
)
# What one member account can be made to do wrong (`OrgOptions.member_faults`).
MEMBER_FAULTS: dict[str, str] = {
    "no-permissions": "the audit role trusts the caller but has no permission policy: "
    "every IAM call of its sessions answers AccessDenied",
    "iam-5xx": "every IAM call in the account answers 500 ServiceFailure or 503",
    "assume-empty": "AssumeRole into the account answers 200 with an empty body",
    "assume-html": "AssumeRole answers 200 with an HTML page (a proxy's, say)",
    "assume-bad-expiry": "AssumeRole answers credentials whose Expiration is not a timestamp",
    "assume-expired": "AssumeRole answers credentials that expired an hour ago",
    "assume-hang": "AssumeRole never answers (until the emulator stops)",
    "refresh-denied": "the first AssumeRole into the account works; every later one is denied",
}


@dataclass(frozen=True, slots=True)
class OrgOptions:
    """What organisation to build and serve."""

    accounts: int = 5  # including the management account
    principals: int = 100  # per account
    seed: int = 0
    faults: Faults = field(default_factory=Faults)  # IAM faults, applied per account
    port: int = 0
    audit_role: str = "collector-audit"
    external_id: str | None = None  # when set, the audit role's trust demands it
    # Member accounts with a knob, counted from the end of the member list:
    # suspended last, then pending closure, then accounts without the audit role.
    suspended: int = 0
    pending_closure: int = 0
    without_role: int = 0
    scp_denied: tuple[str, ...] = ()  # namespaces an SCP on the `sandbox` OU denies
    report_latency: float = 0.0  # seconds an organizations access report stays IN_PROGRESS
    report_failed_share: float = 0.0  # share of entity paths whose reports end FAILED
    # (member number, fault of MEMBER_FAULTS): members are numbered from 1 in join order, the
    # number their names end in (prod-01 is 1, dev-02 is 2).
    member_faults: tuple[tuple[int, str], ...] = ()
    # Lifetime of the credentials AssumeRole grants, whatever DurationSeconds asked; None: what
    # was asked, as AWS does. A short grant brings a sweep's credential refresh within seconds.
    session_seconds: int | None = None

    def __post_init__(self) -> None:
        if self.accounts < 1:
            raise ValueError("accounts must be >= 1 (the management account)")
        if self.principals < 0:
            raise ValueError("principals must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within 0..65535")
        knobs = self.suspended + self.pending_closure + self.without_role
        if min(self.suspended, self.pending_closure, self.without_role) < 0:
            raise ValueError("suspended, pending_closure and without_role must be >= 0")
        if knobs > self.accounts - 1:
            raise ValueError(
                f"suspended + pending_closure + without_role ({knobs}) exceeds "
                f"the {self.accounts - 1} member accounts"
            )
        if not self.audit_role or len(self.audit_role) > 64:
            raise ValueError("audit_role must be 1..64 characters")
        unknown = sorted(set(self.scp_denied) - set(SERVICES))
        if unknown:
            raise ValueError(f"unknown service namespaces in scp_denied: {', '.join(unknown)}")
        if self.report_latency < 0:
            raise ValueError("report_latency must be >= 0")
        if not 0.0 <= self.report_failed_share <= 1.0:
            raise ValueError("report_failed_share must be within 0..1")
        numbers = [number for number, _ in self.member_faults]
        for number, fault in self.member_faults:
            if not 1 <= number <= self.accounts - 1:
                raise ValueError(
                    f"member fault {number}={fault}: members are numbered 1..{self.accounts - 1}"
                )
            if fault not in MEMBER_FAULTS:
                raise ValueError(
                    f"unknown member fault {fault!r} (known: {', '.join(MEMBER_FAULTS)})"
                )
        if len(set(numbers)) != len(numbers):
            raise ValueError("a member is given two faults")
        if self.session_seconds is not None and self.session_seconds < 1:
            raise ValueError("session_seconds must be >= 1")


@dataclass(frozen=True, slots=True)
class OrgUnit:
    """An organizational unit (or the root): where it hangs, and its entity path."""

    id: str
    name: str
    parent_id: str | None  # None for the root
    path: str  # o-…/r-…/ou-… (input may add a trailing slash)


@dataclass(frozen=True, slots=True)
class OrgAccount:
    """One account of the organisation, as ListAccounts shows it plus the emulator's knobs."""

    id: str
    name: str
    email: str
    state: str  # ACTIVE | SUSPENDED | PENDING_CLOSURE
    parent_id: str
    path: str  # o-…/r-…/ou-…/123456789012
    management: bool
    audit_role: bool  # whether the audit role exists in it
    seed: int  # seed of its IAM account and activity
    fault: str | None = None  # one of MEMBER_FAULTS, or None


@dataclass(frozen=True, slots=True)
class OrgLayout:
    """The organisation's shape, fixed by the seed and the options."""

    organization_id: str
    root_id: str
    management_account_id: str
    units: tuple[OrgUnit, ...]  # the root first
    accounts: tuple[OrgAccount, ...]  # the management account first

    def account(self, account_id: str) -> OrgAccount | None:
        """The account with this id, or None."""
        return next((a for a in self.accounts if a.id == account_id), None)

    def unit(self, unit_id: str) -> OrgUnit | None:
        """The root or OU with this id, or None."""
        return next((u for u in self.units if u.id == unit_id), None)

    @property
    def root_path(self) -> str:
        """The entity path of the root."""
        return self.units[0].path

    def entity_paths(self) -> list[str]:
        """Every entity path: the root, each OU, each account."""
        return [unit.path for unit in self.units] + [account.path for account in self.accounts]


def _hash(seed: int, *parts: str) -> int:
    text = "|".join((str(seed), *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=16).digest(), "big")


def _base36(number: int, size: int) -> str:
    chars = []
    for _ in range(size):
        number, digit = divmod(number, 36)
        chars.append(_BASE36[digit])
    return "".join(chars)


def _account_ids(seed: int, count: int) -> list[str]:
    ids: list[str] = []
    attempt = 0
    while len(ids) < count:
        candidate = f"{_hash(seed, 'account', str(attempt)) % 10**12:012d}"
        attempt += 1
        if candidate not in ids:
            ids.append(candidate)
    return ids


def plan(options: OrgOptions) -> OrgLayout:
    """The layout the options and seed give: stable ids, OUs, account placement and states."""
    seed = options.seed
    org_id = "o-" + _base36(_hash(seed, "org"), 10)
    root_suffix = _base36(_hash(seed, "root"), 4)
    root = OrgUnit(f"r-{root_suffix}", "Root", None, f"{org_id}/r-{root_suffix}")
    units: dict[str | None, OrgUnit] = {None: root}
    for name, parent in _UNITS:
        parent_unit = units[parent]
        unit_id = f"ou-{root_suffix}-{_base36(_hash(seed, 'ou', name), 8)}"
        units[name] = OrgUnit(unit_id, name, parent_unit.id, f"{parent_unit.path}/{unit_id}")
    ids = _account_ids(seed, options.accounts)
    members = len(ids) - 1
    faults = dict(options.member_faults)
    accounts = [
        OrgAccount(
            id=ids[0],
            name="management",
            email="aws+management@example.com",
            state="ACTIVE",
            parent_id=root.id,
            path=f"{root.path}/{ids[0]}",
            management=True,
            audit_role=False,
            seed=_hash(seed, "account-seed", ids[0]) % 2**31,
        )
    ]
    for index, account_id in enumerate(ids[1:]):
        unit = units[_PLACEMENT[index % len(_PLACEMENT)]]
        from_end = members - index  # 1 for the last member
        if from_end <= options.suspended:
            state = "SUSPENDED"
        elif from_end <= options.suspended + options.pending_closure:
            state = "PENDING_CLOSURE"
        else:
            state = "ACTIVE"
        closed = options.suspended + options.pending_closure
        knobs = closed + options.without_role
        name = f"{unit.name if unit is not root else 'shared'}-{index + 1:02d}"
        accounts.append(
            OrgAccount(
                id=account_id,
                name=name,
                email=f"aws+{name}@example.com",
                state=state,
                parent_id=unit.id,
                path=f"{unit.path}/{account_id}",
                management=False,
                # Closed accounts keep their role; their state is what denies.
                audit_role=not closed < from_end <= knobs,
                seed=_hash(seed, "account-seed", account_id) % 2**31,
                fault=faults.get(index + 1),
            )
        )
    return OrgLayout(org_id, root.id, ids[0], tuple(units.values()), tuple(accounts))


def trust_policy(management_account_id: str, external_id: str | None) -> str:
    """The audit role's trust policy: the management account may assume it."""
    statement: dict[str, object] = {
        "Effect": "Allow",
        "Principal": {"AWS": f"arn:aws:iam::{management_account_id}:root"},
        "Action": "sts:AssumeRole",
    }
    if external_id is not None:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def add_audit_role(
    backend: IAMBackend, options: OrgOptions, management_account_id: str, *, permitted: bool = True
) -> None:
    """Create the audit role (trust + a read-only Access Advisor permission policy, unless not
    `permitted`: a role whose permission policy was forgotten)."""
    backend.create_role(
        role_name=options.audit_role,
        assume_role_policy_document=trust_policy(management_account_id, options.external_id),
        path="/",
        permissions_boundary=None,
        description="Lets the management account read IAM Access Advisor data",
        tags=[],
        max_session_duration="3600",
    )
    if not permitted:
        return
    permissions = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(_AUDIT_ACTIONS), "Resource": "*"}],
    }
    backend.put_role_policy(options.audit_role, "access-advisor-read", json.dumps(permissions))


def _policy(org: FakeOrganization, policy_id: str, name: str, statement: object) -> FakePolicy:
    content = json.dumps({"Version": "2012-10-17", "Statement": [statement]})
    policy = FakePolicy(org, Name=name, Description=name, Type=SCP, Content=content)
    policy.id = policy_id
    return policy


class _Account(FakeAccount):
    """An account as Organizations describes it since 2026-09-09: `State`, `Paths`, and no
    `Status` (retired that day)."""

    def __init__(self, org: FakeOrganization, account: OrgAccount, joined: datetime) -> None:
        # moto's constructor draws a random id and creates a role in that random
        # account's IAM; the organisation needs neither, so the fields are set here.
        self.type = "ACCOUNT"
        self.region = org.region
        self.organization_id = org.id
        self.master_account_id = org.master_account_id
        self.create_account_status_id = "car-" + account.id[-8:]
        self.id = account.id
        self.name = account.name
        self.email = account.email
        self.create_time = joined
        self.status = account.state
        self.state = account.state
        self.joined_method = "INVITED" if account.management else "CREATED"
        self.parent_id = account.parent_id
        self.attached_policies = []
        self.tags = {}
        self.path = account.path

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        del described["Status"]
        # Organizations writes paths with a trailing slash (the model's `Path` pattern).
        described["Paths"] = [self.path + "/"]
        return described


def write_organization(layout: OrgLayout, options: OrgOptions) -> OrganizationsBackend:
    """Write the organisation into the management account's (reset) Organizations backend."""
    management = layout.management_account_id
    backend: OrganizationsBackend = organizations_backends[management][PARTITION]
    backend.reset()
    org = FakeOrganization(management, region_name=REGION, feature_set="ALL")
    org.id = layout.organization_id
    org.root_id = layout.root_id
    org.master_account_email = layout.accounts[0].email
    backend.org = org
    root = FakeRoot(org)
    # The access report needs SCPs enabled on the root, as in AWS.
    root.policy_types.append({"Type": SCP, "Status": "ENABLED"})
    backend.ou.append(root)
    full = _policy(
        org,
        FULL_ACCESS_POLICY_ID,
        "FullAWSAccess",
        {"Effect": "Allow", "Action": "*", "Resource": "*"},
    )
    full.description = "Allows access to every operation"
    full.aws_managed = True
    backend.policies.append(full)
    for unit in layout.units[1:]:
        ou = FakeOrganizationalUnit(org, Name=unit.name, ParentId=unit.parent_id)
        ou.id = unit.id
        backend.ou.append(ou)
    for index, account in enumerate(layout.accounts):
        backend.accounts.append(_Account(org, account, _JOINED + timedelta(days=index)))
        if not account.management:
            organizations_backends.master_accounts[account.id] = (management, PARTITION)
    # AWS attaches FullAWSAccess to every root, OU and account; SCPs are evaluated per level.
    for target in [unit.id for unit in layout.units] + [a.id for a in layout.accounts]:
        backend.attach_policy(PolicyId=full.id, TargetId=target)
    if options.scp_denied:
        deny = _policy(
            org,
            "p-" + _base36(_hash(options.seed, "deny-policy"), 8),
            "collector-emulator-deny",
            {
                "Effect": "Deny",
                "Action": [f"{namespace}:*" for namespace in sorted(options.scp_denied)],
                "Resource": "*",
            },
        )
        backend.policies.append(deny)
        sandbox = next(unit for unit in layout.units if unit.name == "sandbox")
        backend.attach_policy(PolicyId=deny.id, TargetId=sandbox.id)
    return backend


def clear_organization(layout: OrgLayout) -> None:
    """Forget the organisation in moto's process-wide state."""
    organizations_backends[layout.management_account_id][PARTITION].reset()
    for account in layout.accounts:
        organizations_backends.master_accounts.pop(account.id, None)
