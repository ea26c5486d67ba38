"""What a policy document allows: the service namespaces and action patterns it grants."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from collector.emulator.catalog import SERVICES

# Namespace -> lowercase action patterns granted in it ("*" = every action; "!a|b" = every
# action but those matching a or b, from Allow + NotAction).
Grants = Mapping[str, frozenset[str]]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _split(action: str) -> tuple[str, str]:
    service, _, name = action.partition(":")
    return service.lower(), (name or "*").lower()


@lru_cache(maxsize=4096)
def document_grants(document: str) -> Grants:
    """The namespaces (of the catalog) and action patterns a JSON policy document allows.

    Cached by document text: seeded accounts reuse a few documents thousands of times.
    Deny statements are ignored, as Access Advisor lists what the policies allow.
    """
    try:
        parsed = json.loads(document)
    except ValueError:
        return {}
    grants: dict[str, set[str]] = {}
    for statement in _as_list(parsed.get("Statement") if isinstance(parsed, dict) else None):
        if not isinstance(statement, dict) or statement.get("Effect") != "Allow":
            continue
        if "NotAction" in statement:
            _grant_not_actions(grants, _as_list(statement["NotAction"]))
        for action in _as_list(statement.get("Action")):
            if isinstance(action, str):
                _grant_action(grants, action)
    return {namespace: frozenset(patterns) for namespace, patterns in grants.items()}


def _grant_action(grants: dict[str, set[str]], action: str) -> None:
    if action == "*":
        for namespace in SERVICES:
            grants.setdefault(namespace, set()).add("*")
        return
    service, name = _split(action)
    if service in SERVICES:
        grants.setdefault(service, set()).add(name)
    elif any(char in service for char in "*?"):
        for namespace in fnmatch.filter(SERVICES, service):
            grants.setdefault(namespace, set()).add(name)


def _grant_not_actions(grants: dict[str, set[str]], not_actions: list[Any]) -> None:
    # Allow + NotAction grants everything except what is listed; a service is left out only
    # when all of its actions are excluded (`svc:*`). Of the others, the listed actions are
    # left out: the pattern `!a|b` means every action but those matching `a` or `b`.
    listed = [_split(a) for a in not_actions if isinstance(a, str)]
    for namespace in SERVICES:
        names = {name for service, name in listed if fnmatch.fnmatchcase(namespace, service)}
        if "*" in names:
            continue
        grants.setdefault(namespace, set()).add("!" + "|".join(sorted(names)) if names else "*")


def merge_grants(documents: Iterable[str]) -> Grants:
    """The union of what several policy documents allow."""
    merged: dict[str, set[str]] = {}
    for document in documents:
        for namespace, patterns in document_grants(document).items():
            merged.setdefault(namespace, set()).update(patterns)
    return {namespace: frozenset(patterns) for namespace, patterns in merged.items()}


def _allows(pattern: str, action: str) -> bool:
    if pattern.startswith("!"):  # every action but these (Allow + NotAction)
        return not any(fnmatch.fnmatchcase(action, p) for p in pattern[1:].split("|"))
    return fnmatch.fnmatchcase(action, pattern)


def allowed_actions(patterns: frozenset[str], actions: Iterable[str]) -> list[str]:
    """The actions (by name) that any of the lowercase patterns allows."""
    if "*" in patterns:
        return list(actions)
    return [action for action in actions if any(_allows(p, action.lower()) for p in patterns)]
