"""The seeded synthetic account, written straight into moto's IAM backend (no HTTP)."""

from __future__ import annotations

import json
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from moto.iam.aws_managed_policies import aws_managed_policies_data
from moto.iam.models import AWSManagedPolicy, Group, IAMBackend, ManagedPolicy, Role, User

from collector.emulator.catalog import POPULAR_SERVICES, SERVICES, TRACKED_ACTIONS

# AWS-managed policies the account attaches, from the set moto ships. moto
# loads none unless asked (loading all ~1,600 is slow), so we add just these.
AWS_MANAGED_ATTACHED = (
    "AdministratorAccess",
    "ReadOnlyAccess",
    "PowerUserAccess",
    "AmazonS3ReadOnlyAccess",
    "AmazonEC2FullAccess",
    "IAMReadOnlyAccess",
    "AWSLambda_FullAccess",
    "CloudWatchLogsReadOnlyAccess",
    "AmazonDynamoDBFullAccess",
    "AmazonSQSFullAccess",
    "SecurityAudit",
    "ViewOnlyAccess",
    "AWSLambdaBasicExecutionRole",
)
# Policies every real account can see but few attach: a sweep that forgets
# OnlyAttached=true pays for these. Spread over moto's catalogue (sorted, so fixed for a
# moto version) rather than hand-picked, to stay valid when moto renames one.
AWS_MANAGED_UNATTACHED_COUNT = 60

# Shares of the principal count; the rest are users.
_SHARES = {"group": 0.10, "role": 0.25, "policy": 0.20}
_TEAMS = ("platform", "data", "payments", "web", "mobile", "security", "ml", "ops")
_ROLE_KINDS = ("lambda-exec", "ecs-task", "ci-deploy", "readonly", "etl", "service")
# Name decorations with every character IAM allows in names besides letters and digits
# (`[\w+=,.@-]`), and path segments with the ones it allows in paths; a share of each kind
# gets one, so a sweep must carry them into JSONL exactly.
_NAME_STYLES = ("{base}+ci@example.com", "{base}=svc,{team}", "{base}_{team}.ops", "{team}@{base}")
_SPECIAL_NAME_SHARE = 0.25
_ENVIRONMENTS = ("prod", "dev_eu-1", "ci+cd", "a=1,b@2.c")
_REGION = "us-east-1"
_ID_ALPHABET = string.ascii_uppercase + "234567"
_TRUST = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
)
_ADMIN_DOCUMENT = json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
)


@dataclass(frozen=True, slots=True)
class Layout:
    """How many principals of each kind a seeded account has."""

    users: int
    groups: int
    roles: int
    policies: int


def layout(principals: int) -> Layout:
    """Split a principal count over the kinds; every kind gets one from 4 principals up."""
    if principals < 0:
        raise ValueError("principals must be >= 0")
    counts = {kind: int(principals * share) for kind, share in _SHARES.items()}
    if principals >= 4:
        counts = {kind: max(1, count) for kind, count in counts.items()}
    users = principals - sum(counts.values())
    return Layout(users, counts["group"], counts["role"], counts["policy"])


@lru_cache(maxsize=1)
def _aws_policy_data() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(aws_managed_policies_data)
    return data


@lru_cache(maxsize=1)
def aws_managed_unattached() -> tuple[str, ...]:
    """The AWS-managed policies the account holds but never attaches."""
    names = [name for name in sorted(_aws_policy_data()) if name not in AWS_MANAGED_ATTACHED]
    step = max(1, len(names) // AWS_MANAGED_UNATTACHED_COUNT)
    return tuple(names[::step][:AWS_MANAGED_UNATTACHED_COUNT])


def _statement(rng: random.Random, namespace: str) -> dict[str, Any]:
    style = rng.random()
    if style < 0.25:
        actions: list[str] = [f"{namespace}:*"]
    elif style < 0.6:
        actions = [f"{namespace}:{verb}*" for verb in rng.sample(("Get", "List", "Describe"), 2)]
    else:
        tracked = TRACKED_ACTIONS.get(namespace)
        picks = rng.sample(tracked, min(3, len(tracked))) if tracked else ["Get*"]
        actions = [f"{namespace}:{name}" for name in picks]
    return {"Effect": "Allow", "Action": actions, "Resource": "*"}


# What real policies add around their grants. Conditions and Deny statements change no
# service a report lists (Access Advisor lists what Allow statements allow); they are there so
# that whatever reads the documents (report rightsize) meets them.
_CONDITIONS: tuple[dict[str, Any], ...] = (
    {"StringEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"IpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
    {"StringEquals": {"aws:PrincipalTag/team": "${aws:PrincipalTag/team}"}},
)
_CONDITION_SHARE = 0.3
_DENY_SHARE = 0.2
_REGION_LOCK = {
    "Sid": "DenyOutsideApprovedRegions",
    "Effect": "Deny",
    "NotAction": ["iam:*", "sts:*", "organizations:*", "support:*"],
    "Resource": "*",
    "Condition": {"StringNotEquals": {"aws:RequestedRegion": ["us-east-1", "eu-west-1"]}},
}
# One customer-managed policy per account (the last) is a power-user policy: Allow with
# NotAction, which grants every service but the ones it names.
_POWER_USER = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "EverythingButIdentity",
                "Effect": "Allow",
                "NotAction": ["iam:*", "organizations:*", "account:*"],
                "Resource": "*",
            },
            {"Sid": "ReadIdentity", "Effect": "Allow", "Action": ["iam:Get*", "iam:List*"],
             "Resource": "*"},
        ],
    }
)  # fmt: skip


def _decorated(rng: random.Random, statements: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conditions on some Allow statements, and now and then a Deny statement."""
    for statement in statements:
        if rng.random() < _CONDITION_SHARE:
            statement["Condition"] = rng.choice(_CONDITIONS)
    if rng.random() < _DENY_SHARE:
        if rng.random() < 0.5:
            statements.append(_REGION_LOCK)
        else:
            service = str(rng.choice(statements)["Action"][0]).partition(":")[0]
            statements.append(
                {
                    "Sid": "NoDeletes",
                    "Effect": "Deny",
                    "Action": f"{service}:Delete*",
                    "Resource": "*",
                }
            )
    return statements


def _document(rng: random.Random, namespaces: Sequence[str], decorate: random.Random) -> str:
    statements = [_statement(rng, ns) for ns in namespaces]
    return json.dumps({"Version": "2012-10-17", "Statement": _decorated(decorate, statements)})


class _Seeder:
    """Writes one account; all randomness comes from one seeded generator."""

    def __init__(self, backend: IAMBackend, seed: int, wide_share: float = 0.0) -> None:
        self.backend = backend
        self.wide: set[int] = set()
        # Its own generator: the default account stays the same whatever the share.
        self.wide_rng = random.Random(f"{seed}:wide")
        # The same for what decorates the documents: the principals and grants stay put.
        self.decorate_rng = random.Random(f"{seed}:documents")
        self.wide_share = wide_share
        self.account_id = backend.account_id
        self.rng = random.Random(seed)
        self.popular = sorted(POPULAR_SERVICES)
        self.every = sorted(SERVICES)

    def _id(self, prefix: str) -> str:
        return prefix + "".join(self.rng.choices(_ID_ALPHABET, k=17))

    def _path(self, team: str) -> str:
        draw = self.rng.random()
        if draw < 0.7:
            return "/"
        if draw < 0.9:
            return f"/{team}/"
        # Nested paths, as organisations build them: /org/<team>/<environment>/.
        return f"/org/{team}/{self.rng.choice(_ENVIRONMENTS)}/"

    def _name(self, base: str, team: str) -> str:
        """`base` (already unique), now and then decorated with IAM's special characters."""
        if self.rng.random() >= _SPECIAL_NAME_SHARE:
            return base
        return self.rng.choice(_NAME_STYLES).format(base=base, team=team)

    def _namespaces(self) -> list[str]:
        count = self.rng.randint(1, 4)
        pool = self.popular if self.rng.random() < 0.7 else self.every
        return self.rng.sample(pool, min(count, len(pool)))

    def aws_policies(self) -> list[ManagedPolicy]:
        data = _aws_policy_data()
        attached: list[ManagedPolicy] = []
        for name in (*AWS_MANAGED_ATTACHED, *aws_managed_unattached()):
            policy = AWSManagedPolicy.from_data(name, self.account_id, _REGION, data[name])
            self.backend.managed_policies[policy.arn] = policy
            if name in AWS_MANAGED_ATTACHED:
                attached.append(policy)
        return attached

    def customer_policies(self, count: int) -> list[ManagedPolicy]:
        policies = []
        if self.wide_share and count > 1:
            wide = max(1, round(self.wide_share * count))
            self.wide = set(self.wide_rng.sample(range(1, count), min(wide, count - 1)))
        for index in range(count):
            team = _TEAMS[index % len(_TEAMS)]
            namespaces = self._namespaces()
            # The first one is a break-glass admin policy: a principal allowed `*`.
            document = (
                _ADMIN_DOCUMENT
                if index == 0
                else _document(self.rng, namespaces, self.decorate_rng)
            )
            label = "break-glass-admin" if index == 0 else f"{team}-{namespaces[0]}-access"
            if index in self.wide:
                document = _ADMIN_DOCUMENT
            elif index == count - 1 and count >= 3:
                document, label = _POWER_USER, f"{team}-power-user"
            # moto's models are concrete at runtime; mypy sees the CloudFormation
            # hooks they leave unimplemented as abstract.
            policy = ManagedPolicy(  # type: ignore[abstract]
                self._name(f"{label}-{index:05d}", team),
                account_id=self.account_id,
                region=_REGION,
                description=f"Seeded policy for team {team}",
                document=document,
                path=self._path(team),
            )
            policy.id = self._id("ANPA")
            self.backend.managed_policies[policy.arn] = policy
            policies.append(policy)
        return policies

    def _attach(
        self,
        holder: User | Group | Role,
        customer: Sequence[ManagedPolicy],
        aws: Sequence[ManagedPolicy],
        most: int,
        aws_share: float,
        inline_share: float,
    ) -> None:
        if customer:
            # Skewed so that a few policies are attached widely, as in real accounts.
            for _ in range(self.rng.randint(0, most)):
                index = min(int(self.rng.paretovariate(1.2)) - 1, len(customer) - 1)
                policy = customer[self.rng.randrange(len(customer)) if index > 5 else index]
                if policy.arn not in holder.managed_policies:
                    policy.attach_to(holder)
        if aws and self.rng.random() < aws_share:
            # Never AdministratorAccess at random: it is granted on purpose below.
            policy = self.rng.choice(aws[1:]) if len(aws) > 1 else aws[0]
            if policy.arn not in holder.managed_policies:
                policy.attach_to(holder)
        if self.rng.random() < inline_share:
            holder.put_policy("inline", _document(self.rng, self._namespaces(), self.decorate_rng))

    def _attach_wide(self, customer: Sequence[ManagedPolicy]) -> None:
        holders: list[User | Group | Role] = [
            *self.backend.users.values(),
            *self.backend.groups.values(),
            *self.backend.roles.values(),
        ]
        for index in sorted(self.wide):
            policy = customer[index]
            for holder in self.wide_rng.sample(
                holders, min(len(holders), self.wide_rng.randint(20, 200))
            ):
                if policy.arn not in holder.managed_policies:
                    policy.attach_to(holder)

    def run(self, shape: Layout) -> None:
        aws = self.aws_policies()
        customer = self.customer_policies(shape.policies)
        rest = customer[1:]
        groups = []
        for index in range(shape.groups):
            team = _TEAMS[index % len(_TEAMS)]
            name = self._name(f"{team}-group-{index:04d}", team)
            group = Group(self.account_id, _REGION, name, self._path(team))
            group.id = self._id("AGPA")
            self.backend.groups[group.name] = group
            self._attach(group, rest, aws, 3, 0.15, 0.3)
            groups.append(group)
        for index in range(shape.roles):
            kind = _ROLE_KINDS[index % len(_ROLE_KINDS)]
            path = "/service-role/" if self.rng.random() < 0.1 else self._path(kind)
            role = Role(  # type: ignore[abstract]
                account_id=self.account_id,
                partition="aws",
                role_id=self._id("AROA"),
                name=self._name(f"{kind}-{index:05d}", kind),
                assume_role_policy_document=_TRUST,
                path=path,
                permissions_boundary=None,
                description="Seeded role",
                tags=[],
                max_session_duration="3600",
            )
            self.backend.roles[role.id] = role
            self._attach(role, rest, aws, 3, 0.2, 0.4)
            if index == 0:
                # Principals allowed `*`: an admin role with the AWS-managed
                # AdministratorAccess and the customer break-glass policy.
                aws[0].attach_to(role)
                if customer:
                    customer[0].attach_to(role)
        for index in range(shape.users):
            team = _TEAMS[index % len(_TEAMS)]
            name = self._name(f"{team}.user-{index:05d}", team)
            user = User(self.account_id, _REGION, name, self._path(team))  # type: ignore[abstract]
            user.id = self._id("AIDA")
            self.backend.users[user.name] = user
            if index == 0:
                user.put_policy("admin", _ADMIN_DOCUMENT)
            self._attach(user, rest, aws, 2, 0.05, 0.3)
            if groups:
                for group in self.rng.sample(
                    groups, min(len(groups), self.rng.choice((0, 1, 1, 2, 3)))
                ):
                    group.users.append(user)
        self._attach_wide(customer)
        # Every curated AWS-managed policy is attached somewhere, so that a
        # sweep with AWS-managed policies covers all of them.
        holders: list[User | Group | Role] = [*self.backend.roles.values(), *groups]
        for index, policy in enumerate(aws[1:]):
            if policy.attachment_count == 0 and holders:
                holder = holders[index % len(holders)]
                if policy.arn not in holder.managed_policies:
                    policy.attach_to(holder)


def seed_account(
    backend: IAMBackend, principals: int, seed: int, wide_share: float = 0.0
) -> Layout:
    """Fill an empty IAM backend with a deterministic account of `principals` principals.

    `wide_share` of the customer-managed policies allow `*` and are attached to 20-200
    principals each: reports with hundreds of accessed namespaces and many entities.
    """
    shape = layout(principals)
    _Seeder(backend, seed, wide_share).run(shape)
    return shape
