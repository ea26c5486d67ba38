"""Input validation from botocore's IAM service model: required members, lengths, ranges,
patterns and enums, answered in IAM's "validation error detected" wording."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

import botocore.session
from botocore.model import ListShape, OperationModel, ServiceModel, Shape

# The operations whose contract (ours and the issue's) answers a constraint violation
# with InvalidInput; every other IAM operation answers ValidationError, as IAM does
# for e.g. CreateUser with a name outside its pattern.
INVALID_INPUT_OPERATIONS = frozenset(
    {
        "GenerateServiceLastAccessedDetails",
        "GetServiceLastAccessedDetails",
        "GetServiceLastAccessedDetailsWithEntities",
        "ListUsers",
        "ListGroups",
        "ListRoles",
        "ListPolicies",
    }
)
_SCALARS = frozenset({"string", "integer", "long", "boolean"})


@dataclass(frozen=True, slots=True)
class Violation:
    """The error a request earns: its code and IAM's message."""

    code: str
    message: str


@cache
def _model() -> ServiceModel:
    # Loading the model takes ~50 ms; every emulator in the process shares it.
    return botocore.session.get_session().get_service_model("iam")


@cache
def _operation(name: str) -> OperationModel | None:
    model = _model()
    return model.operation_model(name) if name in model.operation_names else None


@cache
def _pattern(text: str) -> re.Pattern[str]:
    # The model's patterns are Java regexes: \w is ASCII there, and they match the whole value.
    return re.compile(text, re.ASCII)


def _wire_name(member: str) -> str:
    # IAM names a member in its messages with a lower-case first letter: 'userName'.
    return member[:1].lower() + member[1:]


def _problem(shape: Shape, raw: str) -> str | None:
    """What is wrong with one scalar value, in IAM's words, or None."""
    meta = shape.metadata
    if shape.type_name in ("integer", "long"):
        try:
            value = int(raw)
        except ValueError:
            return "Member must be a number"
        if "min" in meta and value < meta["min"]:
            return f"Member must have value greater than or equal to {meta['min']}"
        if "max" in meta and value > meta["max"]:
            return f"Member must have value less than or equal to {meta['max']}"
        return None
    if shape.type_name == "boolean":
        return None if raw in ("true", "false") else "Member must be a boolean"
    enum = getattr(shape, "enum", None)
    if enum and raw not in enum:
        return f"Member must satisfy enum value set: [{', '.join(enum)}]"
    if "min" in meta and len(raw) < meta["min"]:
        return f"Member must have length greater than or equal to {meta['min']}"
    if "max" in meta and len(raw) > meta["max"]:
        return f"Member must have length less than or equal to {meta['max']}"
    if "pattern" in meta and _pattern(meta["pattern"]).fullmatch(raw) is None:
        return f"Member must satisfy regular expression pattern: {meta['pattern']}"
    return None


def _list_problems(name: str, item: Shape, params: Mapping[str, str]) -> list[str]:
    """A list of scalars (`Name.member.N`): each item checked as its shape says."""
    items = [value for key, value in params.items() if key.startswith(f"{name}.member.")]
    problems = [problem for value in items if (problem := _problem(item, value)) is not None]
    if not problems:
        return []
    return [
        f"Value '[{', '.join(items)}]' at '{_wire_name(name)}' failed to satisfy constraint: "
        f"Member must satisfy constraint: [{problems[0]}]"
    ]


def violation(operation: str, params: Mapping[str, str]) -> Violation | None:
    """The error IAM answers for a request outside its operation's model, or None.

    Only top-level members are checked: scalars fully, lists of scalars (sent as
    `Name.member.1...`) item by item, other lists and structures for presence when required.
    """
    model = _operation(operation)
    if model is None or model.input_shape is None:
        return None
    shape = model.input_shape
    problems: list[str] = []
    for name, member in shape.members.items():
        if isinstance(member, ListShape) and member.member.type_name in _SCALARS:
            problems += _list_problems(name, member.member, params)
        raw = params.get(name)
        if raw is None:
            present = any(key.startswith(f"{name}.") for key in params)
            if name in shape.required_members and not present:
                problems.append(
                    f"Value null at '{_wire_name(name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
            continue
        if member.type_name not in _SCALARS:
            continue
        problem = _problem(member, raw)
        if problem is not None:
            problems.append(
                f"Value '{raw}' at '{_wire_name(name)}' failed to satisfy constraint: {problem}"
            )
    if not problems:
        return None
    count = len(problems)
    noun = "error" if count == 1 else "errors"
    code = "InvalidInput" if operation in INVALID_INPUT_OPERATIONS else "ValidationError"
    return Violation(code, f"{count} validation {noun} detected: {'; '.join(problems)}")
