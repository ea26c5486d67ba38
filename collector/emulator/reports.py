"""One report, computed once from moto's state and the activity model.

Both the HTTP operations and the ground truth build reports here, so what the
server answers and what a correct collector must write cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from collector.emulator.activity import Access, ActivityModel, stable_uniform
from collector.emulator.catalog import SERVICES, TRACKED_ACTIONS
from collector.emulator.directory import Directory, Entity, IamPrincipal
from collector.emulator.permissions import allowed_actions, merge_grants

GRANULARITIES = ("SERVICE_LEVEL", "ACTION_LEVEL")


@dataclass(frozen=True, slots=True)
class TrackedAction:
    """One TrackedActionsLastAccessed item."""

    name: str
    last: Access | None
    entity: str | None


@dataclass(frozen=True, slots=True)
class ServiceRow:
    """One ServicesLastAccessed item."""

    namespace: str
    name: str
    last: Access | None
    entity: str | None
    # None when IAM leaves the count out; AWS sometimes sends 0 for unused services.
    total: int | None
    tracked: tuple[TrackedAction, ...] | None


@dataclass(frozen=True, slots=True)
class EntityRow:
    """One EntityDetailsList item."""

    entity: Entity
    last_authenticated: datetime | None


@dataclass(frozen=True, slots=True)
class Report:
    """Everything the three Get operations can return for one job."""

    principal: IamPrincipal
    granularity: str
    services: tuple[ServiceRow, ...]
    entities: Mapping[str, tuple[EntityRow, ...]]


def _latest(accesses: Iterable[tuple[str, Access | None]]) -> tuple[str, Access] | None:
    # Most recent first; ties broken by ARN so the answer is deterministic.
    best: tuple[str, Access] | None = None
    for arn, access in accesses:
        if access is None:
            continue
        if best is None or (access.time, best[0]) > (best[1].time, arn):
            best = (arn, access)
    return best


def _entity_order(row: EntityRow) -> tuple[bool, float, str]:
    stamp = row.last_authenticated
    return (stamp is None, -stamp.timestamp() if stamp else 0.0, row.entity.arn)


def build_report(
    directory: Directory, activity: ActivityModel, arn: str, granularity: str
) -> Report:
    """The report of one principal; raises MalformedArn or UnknownPrincipal."""
    kind, obj = directory.lookup(arn)
    principal = directory.principal(arn)
    grants = merge_grants(directory.documents(kind, obj))
    listed = directory.report_entities(obj)
    # Whose own use counts: users and roles, with groups standing for their members.
    users_of: dict[str, list[Entity]] = {e.arn: directory.members(e) for e in listed}
    users = {u.arn: u for members in users_of.values() for u in members}

    services: list[ServiceRow] = []
    entities: dict[str, tuple[EntityRow, ...]] = {}
    for namespace in sorted(grants, key=lambda ns: (SERVICES[ns].lower(), ns)):
        used = {u: activity.service_access(u, namespace) for u in users}
        latest = _latest(used.items())
        accessed = sum(1 for access in used.values() if access is not None)
        sends_zero = stable_uniform(activity.seed, "total", arn, namespace) < 0.5
        tracked: tuple[TrackedAction, ...] | None = None
        if granularity == "ACTION_LEVEL" and namespace in TRACKED_ACTIONS:
            actions = allowed_actions(grants[namespace], TRACKED_ACTIONS[namespace])
            tracked = tuple(_tracked(activity, namespace, action, used) for action in actions)
        services.append(
            ServiceRow(
                namespace=namespace,
                name=SERVICES[namespace],
                last=latest[1] if latest else None,
                entity=latest[0] if latest else None,
                total=accessed if accessed or sends_zero else None,
                tracked=tracked,
            )
        )
        rows = []
        for entity in listed:
            found = _latest((u.arn, used[u.arn]) for u in users_of[entity.arn])
            rows.append(EntityRow(entity, found[1].time if found else None))
        entities[namespace] = tuple(sorted(rows, key=_entity_order))
    return Report(principal, granularity, tuple(services), entities)


def _tracked(
    activity: ActivityModel, namespace: str, action: str, used: Mapping[str, Access | None]
) -> TrackedAction:
    latest = _latest(
        (user, activity.action_access(user, namespace, action, access))
        for user, access in used.items()
    )
    return TrackedAction(
        name=action, last=latest[1] if latest else None, entity=latest[0] if latest else None
    )
