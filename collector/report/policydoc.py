"""IAM policy documents as data: what their Allow statements grant, and a rewrite without the
actions of unused services (pure Python: no DuckDB, no AWS)."""

# Matching follows IAM: an action is `service:name`, both parts case-insensitive, `*` and `?`
# wildcards in either part; `*` alone is every action of every service. A service counts as
# granted when an Allow statement's Action matches some action of it, or an Allow statement's
# NotAction leaves some action of it out (only `svc:*` or `*` in NotAction leave a whole
# service out). Deny statements, conditions and resources never add a service, as in Access
# Advisor, which lists what the policies allow.

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

# IAM's limit for a managed policy, counted without whitespace.
MAX_POLICY_CHARS = 6144
Document = dict[str, Any]


def as_list(value: Any) -> list[Any]:
    """A policy element that may be one value or a list of them, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def statements(document: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The document's statements (IAM accepts one statement object as well as a list)."""
    return [s for s in as_list(document.get("Statement")) if isinstance(s, dict)]


def split_action(action: str) -> tuple[str, str]:
    """(service pattern, action pattern), the service lower-cased; `*` is `*:*`."""
    if action.strip() == "*":
        return "*", "*"
    service, _, name = action.partition(":")
    return service.strip().lower(), name.strip() or "*"


def _wild(pattern: str) -> bool:
    return "*" in pattern or "?" in pattern


def _matches(pattern: str, value: str) -> bool:
    return fnmatchcase(value.lower(), pattern.lower())


def granted(document: Mapping[str, Any], namespaces: Iterable[str]) -> set[str]:
    """Which of `namespaces` the document's Allow statements grant some action of."""
    universe = set(namespaces)
    found: set[str] = set()
    for statement in statements(document):
        if statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            whole = [
                service
                for service, name in (
                    split_action(a) for a in as_list(statement["NotAction"]) if isinstance(a, str)
                )
                if name == "*"
            ]
            found |= {ns for ns in universe if not any(_matches(s, ns) for s in whole)}
            continue
        for action in as_list(statement.get("Action")):
            if isinstance(action, str):
                service, _ = split_action(action)
                found |= {ns for ns in universe if _matches(service, ns)}
    return found


@dataclass(frozen=True)
class Usage:
    """What one report says about the services of one policy within the window."""

    used: frozenset[str]  # namespaces last used within the window
    unused: frozenset[str]  # namespaces listed and not used within the window, or never
    # Namespaces with ACTION_LEVEL rows -> the tracked actions used within the window.
    used_actions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def listed(self) -> frozenset[str]:
        return self.used | self.unused


def _narrowed(action: Any, usage: Usage) -> list[Any]:
    """What one Action entry of an Allow statement becomes: itself, nothing, or used parts."""
    if not isinstance(action, str):
        return [action]
    service, name = split_action(action)
    if not _wild(service):
        return [] if service in usage.unused else [action]
    if not any(_matches(service, ns) for ns in usage.unused):
        return [action]  # covers nothing unused: left as it is
    narrowed: list[Any] = []
    for namespace in sorted(ns for ns in usage.used if _matches(service, ns)):
        actions = [a for a in usage.used_actions.get(namespace, ()) if _matches(name, a)]
        if actions:
            narrowed += [f"{namespace}:{a}" for a in actions]
        else:
            narrowed.append(f"{namespace}:{name}")
    return narrowed


def rewrite(document: Mapping[str, Any], usage: Usage) -> Document:
    """The document without the actions of the unused services.

    Allow statements lose the actions of unused services; a wildcard that covers an unused
    service becomes the used services it covers (`svc:<its action part>`), or their used
    actions where there are ACTION_LEVEL rows; an Allow statement left with no action is
    dropped. Deny statements, NotAction, conditions, resources and Sids are kept as they are.
    """
    kept: list[dict[str, Any]] = []
    for statement in statements(document):
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            kept.append(statement)
            continue
        actions = as_list(statement["Action"])
        narrowed = list(
            dict.fromkeys(item for action in actions for item in _narrowed(action, usage))
        )
        if not narrowed:
            continue
        if narrowed == actions:
            kept.append(statement)
            continue
        kept.append(statement | {"Action": narrowed[0] if len(narrowed) == 1 else narrowed})
    return {**document, "Statement": kept}


def size(document: Mapping[str, Any]) -> int:
    """Characters IAM counts against its limit: the JSON without whitespace."""
    return len(re.sub(r"\s", "", json.dumps(document, ensure_ascii=False)))


def _parts(statement: dict[str, Any], budget: int) -> list[dict[str, Any]] | None:
    """A statement cut into statements that each fit `budget`, or None if it cannot be.

    Only an Action list can be cut: the same Effect, Resource and Condition over a share of the
    actions each is the same grant (or the same denial). NotAction cannot: its meaning is the
    complement of the whole list.
    """
    if size(statement) <= budget:
        return [statement]
    actions = as_list(statement.get("Action"))
    if "Action" not in statement or len(actions) < 2:
        return None
    # Sized with the longest Sid a part can get, so renaming the parts keeps them in budget.
    probe = statement | ({"Sid": f"{statement['Sid']}Part9999"} if "Sid" in statement else {})
    chunks: list[list[Any]] = [[]]
    for action in actions:
        trial = probe | {"Action": [*chunks[-1], action]}
        if chunks[-1] and size(trial) > budget:
            chunks.append([])
        chunks[-1].append(action)
    parts = [statement | {"Action": chunk} for chunk in chunks]
    if "Sid" in statement:
        parts = [part | {"Sid": f"{statement['Sid']}Part{n}"} for n, part in enumerate(parts, 1)]
    if any(size(part) > budget for part in parts):
        return None
    return parts


def split(document: Mapping[str, Any], limit: int = MAX_POLICY_CHARS) -> list[Document] | None:
    """The document itself if it fits `limit`, else several that together grant the same and
    each fit; None when a single statement cannot be cut small enough."""
    if size(document) <= limit:
        return [dict(document)]
    shell = {key: value for key, value in document.items() if key != "Statement"}
    budget = limit - size(shell | {"Statement": []})
    pieces: list[dict[str, Any]] = []
    for statement in statements(document):
        parts = _parts(statement, budget)
        if parts is None:
            return None
        pieces += parts
    documents: list[list[dict[str, Any]]] = [[]]
    for piece in pieces:
        if documents[-1] and size(shell | {"Statement": [*documents[-1], piece]}) > limit:
            documents.append([])
        documents[-1].append(piece)
    return [shell | {"Statement": group} for group in documents]
