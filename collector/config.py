"""Settings: parsed once from YAML, COLLECTOR_* env and CLI flags into frozen objects."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from collector.errors import ConfigError
from collector.models import PRINCIPAL_TYPES, EntitiesMode, Granularity, PrincipalType
from collector.output import STDOUT, OutputTemplate

LogLevel = Literal["debug", "info", "warning", "error"]

ENV_PREFIX = "COLLECTOR_"
ENV_CONFIG = "COLLECTOR_CONFIG"


@dataclass(frozen=True)
class Rates:
    """Calls per second per IAM operation: the ceiling each adaptive token bucket climbs back to."""

    generate: float = 20.0
    get: float = 20.0
    get_with_entities: float = 20.0
    list: float = 10.0  # each List* operation has its own bucket at this rate
    minimum: float = 0.5  # floor the buckets never go below when throttled


@dataclass(frozen=True)
class DiscoverySettings:
    """Which principals the sweep reports on."""

    kinds: tuple[PrincipalType, ...] = PRINCIPAL_TYPES
    path_prefix: str = "/"
    include: tuple[str, ...] = ()  # fnmatch globs on the name; empty means every name
    exclude: tuple[str, ...] = ()
    aws_managed_policies: bool = False  # also AWS-managed policies attached in the account
    arns: tuple[str, ...] = ()  # report only these principals; empty means every principal found


@dataclass(frozen=True)
class PollSettings:
    """When report jobs are polled, and when one is given up."""

    first_delay: float = 2.0  # before any job latency has been observed
    backoff: float = 1.5
    max_delay: float = 30.0
    jitter: float = 0.2  # +/- share of each delay
    job_deadline: float = 900.0  # seconds from generation to JobTimeout


@dataclass(frozen=True)
class RetrySettings:
    """The one retry policy at the AWS boundary."""

    max_attempts: int = 8  # transient errors: 5xx, connection reset, read timeout
    throttle_max_attempts: int = 50  # Throttling: the bucket slows down; rows are not dropped
    base_delay: float = 0.5
    max_delay: float = 20.0


@dataclass(frozen=True)
class Settings:
    """Everything one sweep needs; built once by the CLI and passed down in slices."""

    output: str = "out/access-advisor-{account_id}-{date}.jsonl"
    endpoint_url: str | None = None
    profile: str | None = None
    region: str = "us-east-1"
    granularity: Granularity = "SERVICE_LEVEL"
    entities: EntitiesMode = "accessed"
    max_jobs_in_flight: int = 200
    generate_workers: int = 4
    fetch_workers: int = 8
    # Docker stops a container 10 s after SIGTERM: 6 s of grace leave 4 s for the final flush.
    shutdown_grace: float = 6.0
    resume: bool = False
    log_level: LogLevel = "info"
    progress: bool | None = None  # None: on when stderr is a terminal
    rates: Rates = field(default_factory=Rates)
    poll: PollSettings = field(default_factory=PollSettings)
    retry: RetrySettings = field(default_factory=RetrySettings)
    discovery: DiscoverySettings = field(default_factory=DiscoverySettings)


_SECTIONS: Mapping[str, type[Any]] = types.MappingProxyType(
    {"rates": Rates, "poll": PollSettings, "retry": RetrySettings, "discovery": DiscoverySettings}
)
# Names a container is likely to use that do not follow COLLECTOR_<SECTION>_<KEY>.
_ENV_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {"COLLECTOR_AWS_MANAGED_POLICIES": "discovery.aws_managed_policies"}
)
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_GRANULARITY_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {"service": "SERVICE_LEVEL", "service_level": "SERVICE_LEVEL"}
    | {"action": "ACTION_LEVEL", "action_level": "ACTION_LEVEL"}
)
_IAM_ARN = re.compile(
    r"arn:aws[-a-z]*:iam::(?P<account>\d{12}|aws):(?P<kind>user|group|role|policy)/\S+"
)


@functools.cache
def _schema() -> Mapping[str, Any]:
    """Dotted key -> type hint of every leaf setting, e.g. `rates.generate` -> float."""
    keys: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(Settings).items():
        if name in _SECTIONS:
            for sub, sub_hint in typing.get_type_hints(_SECTIONS[name]).items():
                keys[f"{name}.{sub}"] = sub_hint
        else:
            keys[name] = hint
    return types.MappingProxyType(keys)


@functools.cache
def _env_names() -> Mapping[str, str]:
    """COLLECTOR_* variable -> dotted key (COLLECTOR_<KEY>, COLLECTOR_<SECTION>_<KEY>)."""
    names = {ENV_PREFIX + key.replace(".", "_").upper(): key for key in _schema()}
    return types.MappingProxyType(names | dict(_ENV_ALIASES))


def _show(value: object) -> str:
    """A value as a YAML user would recognise it in an error message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return repr(value)


def _split_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _convert(value: object, hint: Any, *, text: bool) -> object:
    """Check `value` against a type hint; `text` allows strings for non-string types (env, CLI)."""
    origin = typing.get_origin(hint)
    if origin is types.UnionType:
        if value is None or (text and value == ""):
            return None
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _convert(value, inner, text=text)
    if origin is tuple:
        item_hint = typing.get_args(hint)[0]
        if text and isinstance(value, str):
            value = _split_list(value)
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"expected a list of strings, got {_show(value)}")
        return tuple(_convert(item, item_hint, text=text) for item in value)
    if origin is Literal or hint is str:
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_show(value)}")
        return value
    if hint is bool:
        if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_show(value)}")
        return value
    if hint is int:
        if text and isinstance(value, str):
            try:
                return int(value.strip())
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_show(value)}")
        return value
    if hint is float:
        if text and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = float(value.strip())
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_show(value)}")
        if not math.isfinite(value):
            raise ValueError(f"expected a finite number, got {_show(value)}")
        return float(value)
    raise TypeError(f"no conversion for {hint!r}")  # a new field type needs a branch here


def _choice(value: str, allowed: tuple[str, ...], aliases: Mapping[str, str]) -> str:
    folded = value.strip().lower()
    for choice in allowed:
        if folded == choice.lower():
            return choice
    if folded in aliases:
        return aliases[folded]
    raise ValueError(f"expected one of {', '.join(allowed)}, got {value!r}")


def _granularity(value: Any) -> Any:
    return _choice(value, typing.get_args(Granularity), _GRANULARITY_ALIASES)


def _entities(value: Any) -> Any:
    return _choice(value, typing.get_args(EntitiesMode), {})


def _log_level(value: Any) -> Any:
    return _choice(value, typing.get_args(LogLevel), {"warn": "warning"})


def _kinds(value: Any) -> Any:
    plurals = {f"{kind}s": kind for kind in PRINCIPAL_TYPES} | {"policies": "policy"}
    kinds: list[str] = []
    for item in value:
        kind = _choice(item, PRINCIPAL_TYPES, plurals)
        if kind not in kinds:
            kinds.append(kind)
    if not kinds:
        raise ValueError(f"expected at least one of {', '.join(PRINCIPAL_TYPES)}")
    return tuple(kinds)


def _check(accept: Callable[[Any], bool], expected: str) -> Callable[[Any], Any]:
    """A validator that passes values `accept` allows and names what it expected otherwise."""

    def check(value: Any) -> Any:
        if not accept(value):
            raise ValueError(f"expected {expected}, got {value!r}")
        return value

    return check


_positive = _check(lambda v: v > 0, "a number greater than 0")
_not_negative = _check(lambda v: v >= 0, "a number of at least 0")
_count = _check(lambda v: v >= 1, "an integer of at least 1")
_backoff = _check(lambda v: v >= 1, "a factor of at least 1")
_share = _check(lambda v: 0 <= v < 1, "a share from 0 up to (not including) 1")


def _non_empty(value: Any) -> Any:
    if not value.strip():
        raise ValueError("expected a non-empty string")
    return value


def _path_prefix(value: Any) -> Any:
    if not (value.startswith("/") and value.endswith("/")):
        raise ValueError(f"expected a path that starts and ends with '/', got {value!r}")
    return value


def _globs(value: Any) -> Any:
    for pattern in value:
        if not pattern:
            raise ValueError("expected non-empty globs, got ''")
        check_glob(pattern)
    return value


def check_glob(pattern: str) -> None:
    """Reject a glob fnmatch would silently read literally: a `[` that opens no set."""
    i = 0
    while i < len(pattern):
        if pattern[i] == "[":
            j = i + 1
            if j < len(pattern) and pattern[j] == "!":
                j += 1
            if j < len(pattern) and pattern[j] == "]":
                j += 1  # fnmatch reads a `]` right after `[` or `[!` as a member
            close = pattern.find("]", j)
            if close == -1:
                raise ValueError(f"invalid glob {pattern!r}: '[' at position {i} is never closed")
            i = close
        i += 1


def _arns(value: Any) -> Any:
    for arn in value:
        match = _IAM_ARN.fullmatch(arn)
        if match is None:
            raise ValueError(
                f"invalid IAM ARN {arn!r} (expected arn:aws:iam::<12-digit account>:"
                "user|group|role|policy/<path><name>)"
            )
        if match["account"] == "aws" and match["kind"] != "policy":
            raise ValueError(f"invalid IAM ARN {arn!r}: only policies live in account 'aws'")
    return tuple(dict.fromkeys(value))


def _endpoint(value: Any) -> Any:
    if value is not None and not re.match(r"https?://[^/\s]+", value):
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value


def _output(value: Any) -> Any:
    OutputTemplate.parse(value)  # the one check, the same the sweep renders with
    return value


_VALIDATORS: Mapping[str, Callable[[Any], Any]] = types.MappingProxyType(
    {
        "output": _output,
        "endpoint_url": _endpoint,
        "region": _non_empty,
        "granularity": _granularity,
        "entities": _entities,
        "log_level": _log_level,
        "max_jobs_in_flight": _count,
        "generate_workers": _count,
        "fetch_workers": _count,
        "shutdown_grace": _not_negative,
        "rates.generate": _positive,
        "rates.get": _positive,
        "rates.get_with_entities": _positive,
        "rates.list": _positive,
        "rates.minimum": _positive,
        "poll.first_delay": _not_negative,
        "poll.backoff": _backoff,
        "poll.max_delay": _positive,
        "poll.jitter": _share,
        "poll.job_deadline": _positive,
        "retry.max_attempts": _count,
        "retry.throttle_max_attempts": _count,
        "retry.base_delay": _not_negative,
        "retry.max_delay": _positive,
        "discovery.kinds": _kinds,
        "discovery.path_prefix": _path_prefix,
        "discovery.include": _globs,
        "discovery.exclude": _globs,
        "discovery.arns": _arns,
    }
)


def _parse(key: str, value: object, *, source: str, label: str, text: bool) -> object:
    """One setting converted and validated; errors name the source and the key."""
    try:
        converted = _convert(value, _schema()[key], text=text)
        validate = _VALIDATORS.get(key)
        return converted if validate is None or converted is None else validate(converted)
    except ValueError as exc:
        raise ConfigError(f"{source}: {label}: {exc}") from None


def _unknown(source: str, name: str, known: list[str]) -> ConfigError:
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(f"{source}: unknown key {name!r} ({hint}known: {', '.join(known)})")


def _from_yaml(path: str) -> dict[str, object]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {_yaml_reason(exc)}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {_show(document)}")
    values: dict[str, object] = {}
    top_level = sorted({key.split(".")[0] for key in _schema()})
    for name, value in document.items():
        if name in _SECTIONS:
            if value is None:
                continue  # a section whose keys are all commented out
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {name}: expected a mapping, got {_show(value)}")
            section_keys = [f.name for f in dataclasses.fields(_SECTIONS[name])]
            for sub, sub_value in value.items():
                if sub not in section_keys:
                    raise _unknown(path, f"{name}.{sub}", section_keys)
                key = f"{name}.{sub}"
                values[key] = _parse(key, sub_value, source=path, label=key, text=False)
        elif str(name) in _schema():
            values[name] = _parse(name, value, source=path, label=name, text=False)
        else:
            raise _unknown(path, str(name), top_level)
    return values


def _yaml_reason(exc: yaml.YAMLError) -> str:
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}"
        reason = f"{where}: {exc.problem or exc.context or 'syntax error'}"
        start = exc.context_mark
        if exc.context and start is not None and start.line != mark.line:
            reason += f" ({exc.context} on line {start.line + 1})"
        return reason
    return " ".join(str(exc).split())


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping instead of keeping the last."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[object] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} given twice", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    names = _env_names()
    values: dict[str, object] = {}
    given_by: dict[str, str] = {}
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name == ENV_CONFIG:
            continue
        if name not in names:
            raise _unknown("environment", name, sorted([*names, ENV_CONFIG]))
        if env[name] == "":
            continue  # `VAR=` in a container spec means "not set"
        key = names[name]
        if key in given_by:
            raise ConfigError(f"environment: {given_by[key]} and {name} both set {key}; keep one")
        given_by[key] = name
        values[key] = _parse(key, env[name], source="environment", label=name, text=True)
    return values


def _from_overrides(overrides: Mapping[str, object]) -> dict[str, object]:
    values: dict[str, object] = {}
    for key, value in overrides.items():
        if value is None:
            continue  # the flag was not given
        if key not in _schema():
            raise _unknown("command line", key, sorted(_schema()))
        values[key] = _parse(key, value, source="command line", label=key, text=True)
    return values


def _build(values: Mapping[str, Any]) -> Settings:
    top = {key: value for key, value in values.items() if "." not in key}
    sections = {
        name: cls(**{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(name + ".")})
        for name, cls in _SECTIONS.items()
    }
    settings = Settings(**top, **sections)
    rates = settings.rates
    for name in ("generate", "get", "get_with_entities", "list"):
        if rates.minimum > getattr(rates, name):
            raise ConfigError(
                f"settings: rates.minimum ({rates.minimum:g}) must not exceed "
                f"rates.{name} ({getattr(rates, name):g})"
            )
    if settings.resume and settings.output == STDOUT:
        raise ConfigError("settings: resume needs a file output, not stdout (-)")
    if settings.poll.first_delay > settings.poll.max_delay:
        raise ConfigError(
            f"settings: poll.first_delay ({settings.poll.first_delay:g}) must not exceed "
            f"poll.max_delay ({settings.poll.max_delay:g})"
        )
    return settings


def load_settings(
    config_path: str | None, env: Mapping[str, str], overrides: Mapping[str, object]
) -> Settings:
    """Defaults < YAML file (`config_path`, else $COLLECTOR_CONFIG) < COLLECTOR_* env < overrides.

    `overrides` holds CLI flags by dotted key (`output`, `rates.generate`, `discovery.kinds`);
    None means the flag was not given. Every problem raises ConfigError with one line.
    """
    path = config_path if config_path is not None else env.get(ENV_CONFIG) or None
    values: dict[str, object] = {}
    if path is not None:
        values |= _from_yaml(path)
    values |= _from_env(env)
    values |= _from_overrides(overrides)
    return _build(values)
