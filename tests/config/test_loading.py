"""Tests of the settings loader: precedence, env mapping, validation and its one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from collector.config.loading import load_settings
from collector.config.settings import DiscoverySettings, Rates, Settings
from collector.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def write(tmp_path: Path, text: str, name: str = "config.yaml") -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def error_of(config: str | None, env: dict[str, str], overrides: dict[str, object]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(config, env, overrides)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_example_config_loads_and_equals_the_defaults() -> None:
    """config.example.yaml documents every key at its default value."""
    assert load_settings(str(EXAMPLE), {}, {}) == Settings()


def test_example_config_names_every_key() -> None:
    """Every setting, top-level and nested, appears in the example file."""
    text = EXAMPLE.read_text(encoding="utf-8")
    for name, value in vars(Settings()).items():
        assert f"\n{name}:" in text
        if hasattr(value, "__dataclass_fields__"):
            for sub in vars(value):
                assert f"\n  {sub}:" in text, f"{name}.{sub}"


def test_nothing_given_gives_defaults() -> None:
    """No file, no env, no flags: the dataclass defaults."""
    assert load_settings(None, {}, {}) == Settings()


def test_precedence_defaults_file_env_flags(tmp_path: Path) -> None:
    """YAML overrides defaults, COLLECTOR_* overrides YAML, flags override env; None is no flag."""
    config = write(
        tmp_path,
        "output: from-file.jsonl\nregion: eu-west-1\nrates:\n  generate: 3\n  get: 4\n",
    )
    env = {"COLLECTOR_OUTPUT": "from-env.jsonl", "COLLECTOR_RATES_GET": "7.5"}
    settings = load_settings(
        config, env, {"output": "from-flag.jsonl", "rates.get": None, "granularity": None}
    )
    assert settings.output == "from-flag.jsonl"
    assert settings.region == "eu-west-1"
    assert settings.rates == Rates(generate=3.0, get=7.5)
    assert settings.granularity == "SERVICE_LEVEL"


def test_collector_config_env_names_the_file(tmp_path: Path) -> None:
    """$COLLECTOR_CONFIG is read when no path is passed, and ignored when one is."""
    from_env = write(tmp_path, "region: ap-south-1\n", "env.yaml")
    from_flag = write(tmp_path, "region: sa-east-1\n", "flag.yaml")
    env = {"COLLECTOR_CONFIG": from_env}
    assert load_settings(None, env, {}).region == "ap-south-1"
    assert load_settings(from_flag, env, {}).region == "sa-east-1"


def test_env_strings_convert_to_field_types() -> None:
    """Env values become bools, ints, floats, tuples and None as the field needs."""
    env = {
        "COLLECTOR_ENDPOINT_URL": "http://127.0.0.1:5000",
        "COLLECTOR_PROFILE": "audit",
        "COLLECTOR_GRANULARITY": "action",
        "COLLECTOR_ENTITIES": "ALL",
        "COLLECTOR_MAX_JOBS_IN_FLIGHT": "250",
        "COLLECTOR_LOG_LEVEL": "DEBUG",
        "COLLECTOR_RATES_GENERATE": "2",
        "COLLECTOR_RATES_GET": "3.5",
        "COLLECTOR_RATES_GET_WITH_ENTITIES": "4",
        "COLLECTOR_RATES_LIST": "1",
        "COLLECTOR_DISCOVERY_KINDS": "roles, policies",
        "COLLECTOR_AWS_MANAGED_POLICIES": "yes",
        "COLLECTOR_RESUME": "1",
        "COLLECTOR_PROGRESS": "off",
        "COLLECTOR_POLL_JOB_DEADLINE": "60",
        "COLLECTOR_REGION": "",  # empty: treated as unset
        "HOME": "/root",  # other variables are none of our business
    }
    settings = load_settings(None, env, {})
    assert settings.endpoint_url == "http://127.0.0.1:5000"
    assert settings.profile == "audit"
    assert settings.granularity == "ACTION_LEVEL"
    assert settings.entities == "all"
    assert settings.max_jobs_in_flight == 250
    assert settings.log_level == "debug"
    assert settings.rates == Rates(generate=2.0, get=3.5, get_with_entities=4.0, list=1.0)
    assert settings.discovery.kinds == ("role", "policy")
    assert settings.discovery.aws_managed_policies is True
    assert settings.resume is True
    assert settings.progress is False
    assert settings.poll.job_deadline == 60.0
    assert settings.region == "us-east-1"


def test_yaml_parses_into_frozen_tuples(tmp_path: Path) -> None:
    """YAML lists become tuples, plurals and case are normalised, and the result is frozen."""
    config = write(
        tmp_path,
        "granularity: ACTION_LEVEL\n"
        "discovery:\n"
        "  kinds: [Users, group]\n"
        "  path_prefix: /engineering/\n"
        "  include: ['app-*', 'svc-[ab]*']\n"
        "  exclude: ['*-old']\n"
        "  arns:\n"
        "    - arn:aws:iam::123456789012:role/app/deployer\n"
        "    - arn:aws:iam::aws:policy/ReadOnlyAccess\n",
    )
    settings = load_settings(config, {}, {})
    assert settings.discovery == DiscoverySettings(
        kinds=("user", "group"),
        path_prefix="/engineering/",
        include=("app-*", "svc-[ab]*"),
        exclude=("*-old",),
        arns=(
            "arn:aws:iam::123456789012:role/app/deployer",
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
        ),
    )
    with pytest.raises(AttributeError):
        settings.discovery.kinds = ()  # type: ignore[misc]


def test_cli_overrides_accept_native_values_and_lists() -> None:
    """Flags may arrive as typed values or strings; lists or comma strings both work."""
    settings = load_settings(
        None,
        {},
        {"resume": True, "rates.generate": "1.5", "discovery.kinds": ["user"], "entities": "none"},
    )
    assert settings.resume is True
    assert settings.rates.generate == 1.5
    assert settings.discovery.kinds == ("user",)
    assert settings.entities == "none"


def test_empty_file_and_empty_section_give_defaults(tmp_path: Path) -> None:
    """An empty YAML file, or a section whose keys are all commented out, changes nothing."""
    assert load_settings(write(tmp_path, "# nothing\n"), {}, {}) == Settings()
    assert (
        load_settings(write(tmp_path, "rates:\n#  generate: 1\n", "b.yaml"), {}, {}) == Settings()
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "rates:\n  generate: fast\n",
            "config.yaml: rates.generate: expected a number, got 'fast'",
        ),
        (
            "ratez:\n  generate: 1\n",
            "config.yaml: unknown key 'ratez' (did you mean 'rates'? known: ",
        ),
        ("rates:\n  burst: 1\n", "config.yaml: unknown key 'rates.burst' (known: generate, "),
        ("max_jobs_in_flight: 2.5\n", "max_jobs_in_flight: expected an integer, got 2.5"),
        ("max_jobs_in_flight: 0\n", "max_jobs_in_flight: expected an integer of at least 1"),
        ("resume: maybe\n", "resume: expected true or false, got 'maybe'"),
        ("rates:\n  get: 0\n", "rates.get: expected a number greater than 0, got 0.0"),
        ("rates:\n  get: true\n", "rates.get: expected a number, got true"),
        ("rates: 5\n", "config.yaml: rates: expected a mapping, got 5"),
        ("granularity: fine\n", "granularity: expected one of SERVICE_LEVEL, ACTION_LEVEL"),
        ("entities: some\n", "entities: expected one of none, accessed, all, got 'some'"),
        ("log_level: loud\n", "log_level: expected one of debug, info, warning, error"),
        ("discovery:\n  kinds: [user, bucket]\n", "discovery.kinds: expected one of user, group"),
        ("discovery:\n  kinds: []\n", "discovery.kinds: expected at least one of user"),
        ("discovery:\n  kinds: user\n", "discovery.kinds: expected a list of strings, got 'user'"),
        ("discovery:\n  path_prefix: /eng\n", "path_prefix: expected a path that starts and ends"),
        ("discovery:\n  include: ['app-[x']\n", "discovery.include: invalid glob 'app-[x'"),
        ("discovery:\n  exclude: ['']\n", "discovery.exclude: expected non-empty globs"),
        (
            "discovery:\n  arns: ['arn:aws:s3:::bucket']\n",
            "discovery.arns: invalid IAM ARN 'arn:aws:s3:::bucket'",
        ),
        (
            "discovery:\n  arns: ['arn:aws:iam::aws:role/x']\n",
            "only policies live in account 'aws'",
        ),
        ("endpoint_url: localhost:5000\n", "endpoint_url: expected an http:// or https:// URL"),
        ("output: 'out/{acount_id}.jsonl'\n", "output: unknown placeholder {acount_id}"),
        ("poll:\n  jitter: 1.5\n", "poll.jitter: expected a share from 0"),
        ("- a\n- b\n", "config.yaml: expected a mapping of settings, got a list"),
        ("rates:\n  minimum: 30\n", "rates.minimum (30) must not exceed rates.generate (20)"),
    ],
)
def test_bad_yaml_values_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    """Each wrong key, type or value is a one-line ConfigError naming the file and the key."""
    message = error_of(write(tmp_path, text), {}, {})
    assert expected in message
    assert message.startswith(str(tmp_path)) or message.startswith("settings:")


def test_malformed_yaml_names_the_line(tmp_path: Path) -> None:
    """Broken YAML reports `not valid YAML` with the line number, on one line."""
    config = write(tmp_path, "output: a.jsonl\nrates:\n  generate: [1, 2\nregion: x\n")
    message = error_of(config, {}, {})
    assert message.startswith(f"{config}: not valid YAML: line ")


def test_duplicate_yaml_key_is_an_error(tmp_path: Path) -> None:
    """A key given twice is reported instead of silently keeping the last value."""
    message = error_of(write(tmp_path, "region: a\nregion: b\n"), {}, {})
    assert "not valid YAML: line 2" in message
    assert "'region' given twice" in message


def test_missing_config_file(tmp_path: Path) -> None:
    """A config path that does not exist says so, naming it."""
    missing = tmp_path / "nope.yaml"
    assert error_of(str(missing), {}, {}) == f"config file not found: {missing}"
    assert error_of(None, {"COLLECTOR_CONFIG": str(missing)}, {}) == (
        f"config file not found: {missing}"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"COLLECTOR_RATES_GENERATE": "fast"},
            "environment: COLLECTOR_RATES_GENERATE: expected a number, got 'fast'",
        ),
        (
            {"COLLECTOR_OUTPUTT": "x"},
            "unknown key 'COLLECTOR_OUTPUTT' (did you mean 'COLLECTOR_OUTPUT'?",
        ),
        ({"COLLECTOR_RESUME": "sometimes"}, "COLLECTOR_RESUME: expected true or false"),
        ({"COLLECTOR_MAX_JOBS_IN_FLIGHT": "many"}, "expected an integer, got 'many'"),
        ({"COLLECTOR_DISCOVERY_KINDS": "users,buckets"}, "COLLECTOR_DISCOVERY_KINDS: expected"),
        (
            {
                "COLLECTOR_AWS_MANAGED_POLICIES": "1",
                "COLLECTOR_DISCOVERY_AWS_MANAGED_POLICIES": "0",
            },
            "both set discovery.aws_managed_policies",
        ),
    ],
)
def test_bad_env_names_the_variable(env: dict[str, str], expected: str) -> None:
    """A wrong or unknown COLLECTOR_* variable is a one-line error naming the variable."""
    assert expected in error_of(None, env, {})


def test_env_error_wins_over_valid_file(tmp_path: Path) -> None:
    """A value is checked where it was given, so the message points at the env, not the file."""
    config = write(tmp_path, "rates:\n  generate: 3\n")
    message = error_of(config, {"COLLECTOR_RATES_GENERATE": "-1"}, {})
    assert message == (
        "environment: COLLECTOR_RATES_GENERATE: expected a number greater than 0, got -1.0"
    )


def test_bad_override_names_the_flag() -> None:
    """A bad CLI value and an unknown override key both name the key."""
    assert error_of(None, {}, {"granularity": "fine"}).startswith("command line: granularity:")
    assert error_of(None, {}, {"rates.fast": 1}).startswith(
        "command line: unknown key 'rates.fast'"
    )
