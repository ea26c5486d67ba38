"""Loading settings: defaults < YAML file < COLLECTOR_* env < flags, each value checked once."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from collector.config.settings import (
    SECTIONS,
    Flag,
    Settings,
)
from collector.errors import ConfigError
from collector.template import STDOUT

ENV_PREFIX = "COLLECTOR_"
ENV_CONFIG = "COLLECTOR_CONFIG"
# Read by the shard resolution itself, with JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs).
ENV_OTHERS = frozenset({ENV_CONFIG, "COLLECTOR_SHARD_COUNT"})
# Names a container is likely to use that do not follow COLLECTOR_<SECTION>_<KEY>.
ENV_ALIASES: Mapping[str, str] = types.MappingProxyType(
    {"COLLECTOR_AWS_MANAGED_POLICIES": "discovery.aws_managed_policies"}
)


@functools.cache
def schema() -> Mapping[str, Any]:
    """Dotted key -> type hint of every leaf setting, e.g. `rates.generate` -> float."""
    keys: dict[str, Any] = {}
    for name, hint in typing.get_type_hints(Settings, include_extras=True).items():
        if name in SECTIONS:
            for sub, sub_hint in typing.get_type_hints(SECTIONS[name], include_extras=True).items():
                keys[f"{name}.{sub}"] = sub_hint
        else:
            keys[name] = hint
    return types.MappingProxyType(keys)


@dataclass(frozen=True)
class Option:
    """One settings key as a command-line option: its flag, help, and allowed values."""

    key: str  # dotted, e.g. `org.role_name`
    flag: Flag
    help: str
    choices: tuple[str, ...]  # a Literal key's values; empty otherwise


def options() -> list[Option]:
    """Every key that has a command-line option, in schema order."""
    found = []
    for key, hint in schema().items():
        metadata = getattr(hint, "__metadata__", ())
        flag = next((item for item in metadata if isinstance(item, Flag)), None)
        if flag is None:
            continue
        described = [getattr(item, "description", None) for item in metadata]
        text = flag.help or next((d for d in described if d), "")
        base = typing.get_args(hint)[0]
        choices = typing.get_args(base) if typing.get_origin(base) is typing.Literal else ()
        found.append(Option(key, flag, text, tuple(str(c) for c in choices)))
    return found


def env_name(key: str) -> str:
    """The COLLECTOR_* variable of a dotted key."""
    return ENV_PREFIX + key.replace(".", "_").upper()


@functools.cache
def _env_names() -> Mapping[str, str]:
    """COLLECTOR_* variable -> dotted key (COLLECTOR_<KEY>, COLLECTOR_<SECTION>_<KEY>)."""
    names = {env_name(key): key for key in schema()}
    return types.MappingProxyType(names | dict(ENV_ALIASES))


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


@functools.cache
def _adapter(key: str) -> TypeAdapter[Any]:
    return TypeAdapter(schema()[key])


def _reason(error: ErrorDetails) -> str:
    """pydantic's error for one value, in this project's words: 'expected X, got Y'."""
    kind, given = error["type"], _show(error.get("input"))
    if kind == "value_error":
        return str(error.get("ctx", {}).get("error", error["msg"]))
    for prefix, expected in _EXPECTED:
        if kind.startswith(prefix):
            return f"expected {expected}, got {given}"
    return f"{error['msg'].lower()}, got {given}"


_EXPECTED = (
    ("finite_number", "a finite number"),
    ("float", "a number"),
    ("int", "an integer"),
    ("bool", "true or false"),
    ("string", "a string"),
    ("tuple", "a list of strings"),
    ("literal", "one of the listed values"),
)


def _parse(key: str, value: object, *, source: str, label: str, text: bool) -> object:
    """One setting converted and validated; errors name the source and the key.

    Text (environment, flags) is converted from strings; YAML values must have the right type.
    """
    hint = schema()[key]
    if text and isinstance(value, str) and _is_list(hint):
        value = tuple(_split_list(value))
    elif isinstance(value, list):
        value = tuple(value)
    try:
        return _adapter(key).validate_python(value, strict=not text)
    except ValidationError as exc:
        raise ConfigError(f"{source}: {label}: {_reason(exc.errors()[0])}") from None


def _is_list(hint: Any) -> bool:
    """Whether a key holds a list (given as comma-separated text in env and flags)."""
    base = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    return typing.get_origin(base) is tuple


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
    top_level = sorted({key.split(".")[0] for key in schema()})
    for name, value in document.items():
        if name in SECTIONS:
            if value is None:
                continue  # a section whose keys are all commented out
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: {name}: expected a mapping, got {_show(value)}")
            section_keys = [f.name for f in dataclasses.fields(SECTIONS[name])]
            for sub, sub_value in value.items():
                if sub not in section_keys:
                    raise _unknown(path, f"{name}.{sub}", section_keys)
                key = f"{name}.{sub}"
                values[key] = _parse(key, sub_value, source=path, label=key, text=False)
        elif str(name) in schema():
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
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain name, not a list or mapping", key_node.start_mark
            )
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
        if not name.startswith(ENV_PREFIX) or name in ENV_OTHERS:
            continue
        if name not in names:
            raise _unknown("environment", name, sorted([*names, *ENV_OTHERS]))
        if env[name] == "":
            continue  # `VAR=` in a container spec means "not set"
        key = names[name]
        if key in given_by:
            raise ConfigError(f"environment: {given_by[key]} and {name} both set {key}; keep one")
        given_by[key] = name
        values[key] = _parse(key, env[name], source="environment", label=name, text=True)
    return values


def _from_overrides(overrides: Mapping[str, object]) -> dict[str, object]:
    flags = {option.key: option.flag.name for option in options()}
    values: dict[str, object] = {}
    for key, value in overrides.items():
        if value is None:
            continue  # the flag was not given
        if key not in schema():
            raise _unknown("command line", key, sorted(schema()))
        if isinstance(value, str) and _is_list(schema()[key]) and not _split_list(value):
            # A flag given an empty value is an empty variable expanded (`--accounts "$IDS"`):
            # never "no filter", never a fall back to another kind of sweep.
            raise ConfigError(
                f"command line: {flags.get(key, key)}: expected at least one value, got {value!r}"
            )
        values[key] = _parse(key, value, source="command line", label=key, text=True)
    return values


def _build(values: Mapping[str, Any]) -> Settings:
    top = {key: value for key, value in values.items() if "." not in key}
    sections = {
        name: cls(**{k.split(".", 1)[1]: v for k, v in values.items() if k.startswith(name + ".")})
        for name, cls in SECTIONS.items()
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


# The keys that turn an organisation sweep on; every other org-only key needs one of them.
ORG_MODE_KEYS = frozenset({"org.org", "org.ous", "org.accounts", "org.accounts_file"})


def _value(settings: Settings, key: str) -> object:
    section, _, name = key.rpartition(".")
    return getattr(getattr(settings, section) if section else settings, name)


def check_mode(settings: Settings) -> None:
    """Refuse an organisation-only key given to a single-account run, rather than ignore it.

    A key at its default is not "given" (config.example.yaml lists every key): only a value
    that would change an organisation sweep is refused. `run_id` is not organisation-only: it
    names a single account's run (its records and `{run_id}` in the output) as well.
    """
    if settings.org.enabled:
        return
    defaults = Settings()
    for option in options():
        if not option.flag.org or option.key in ORG_MODE_KEYS:
            continue
        if _value(settings, option.key) != _value(defaults, option.key):
            needs = "--org" if option.key == "org_access_report" else "--org, --ou or --accounts"
            raise ConfigError(
                f"{option.flag.name} ({option.key}, ${env_name(option.key)}) only applies to an "
                f"organisation sweep: add {needs}, or leave it out"
            )


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
