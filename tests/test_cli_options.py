"""`collector sweep`'s options come from the settings schema: each sets its key, with its help."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from collector.cli import _overrides, build_parser
from collector.config.loading import check_mode, env_name, load_settings, options
from collector.config.settings import Settings
from tests.support.cli import COLLECTOR, cli, one_line_error


def test_every_flag_sets_its_own_key_and_no_other() -> None:
    """Each schema flag, given alone, fills exactly its dotted key in the overrides."""
    for option in options():
        argv = [option.flag.name] if option.flag.switch is not None else [option.flag.name, "x"]
        args = build_parser(emulator_options=False).parse_args(["sweep", *argv])
        given = {key: value for key, value in _overrides(args).items() if value is not None}
        expected = option.flag.switch if option.flag.switch is not None else "x"
        assert given == {option.key: expected}, option.flag.name


@pytest.mark.e2e
def test_help_of_every_option_is_the_keys_description_and_names_its_variable() -> None:
    """`collector sweep --help` shows each key's help and its COLLECTOR_* variable."""
    shown = subprocess.run(
        [COLLECTOR, "sweep", "--help"], capture_output=True, text=True, check=True
    )
    text = " ".join(shown.stdout.split())
    for option in options():
        assert option.flag.name in text
        assert " ".join(option.help.split()) in text, option.key
        assert f"${env_name(option.key)}" in text


def test_flags_reach_the_settings_they_name() -> None:
    """A few flags through the loader: nested keys, a repeated option, a negated switch."""
    args = build_parser(emulator_options=False).parse_args(
        ["sweep", "--ou", "ou-a", "--ou", "ou-b", "--no-progress", "--aws-managed-policies",
         "--role-duration", "900", "--max-jobs-in-flight", "7"]
    )  # fmt: skip
    settings = load_settings(None, {}, _overrides(args))
    assert settings.org.ous == ("ou-a", "ou-b")
    assert settings.progress is False
    assert settings.discovery.aws_managed_policies is True
    assert settings.org.role_duration == 900
    assert settings.max_jobs_in_flight == 7


ORG_ONLY_GIVEN = [
    (["--org-access-report"], {}, "--org-access-report"),
    (["--role-name", "collector-audit"], {}, "--role-name"),
    (["--external-id", "x-1"], {}, "--external-id"),
    (["--role-session-name", "nightly"], {}, "--role-session-name"),
    (["--role-duration", "900"], {}, "--role-duration"),
    (["--include-accounts", "111111111111"], {}, "--include-accounts"),
    (["--exclude-accounts", "111111111111"], {}, "--exclude-accounts"),
    (["--max-accounts-in-flight", "2"], {}, "--max-accounts-in-flight"),
    (["--manifest", "m.json"], {}, "--manifest"),
    (["--shard", "0/2"], {}, "--shard"),
    ([], {"COLLECTOR_ORG_ACCESS_REPORT": "true"}, "--org-access-report"),
    ([], {"COLLECTOR_ORG_ROLE_NAME": "collector-audit"}, "--role-name"),
]


@pytest.mark.e2e
@pytest.mark.parametrize(("flags", "env", "named"), ORG_ONLY_GIVEN)
def test_an_org_only_option_without_org_mode_is_exit_2(
    tmp_path: Path, flags: list[str], env: dict[str, str], named: str
) -> None:
    """An option that only means something in an organisation sweep, given (by flag or
    variable) to a single-account sweep, is one line naming it and exit 2, before any call."""
    proc = cli(
        "sweep", "--endpoint-url", "http://127.0.0.1:9", "--output", "out/x.jsonl", *flags,
        cwd=tmp_path, env=env, timeout=60,
    )  # fmt: skip
    one_line_error(proc, 2, named, "--org")
    assert not (tmp_path / "out").exists()


def test_org_only_options_at_their_defaults_and_run_id_are_accepted() -> None:
    """The example config's org-only keys at their defaults, and --run-id (it names a
    single-account run too), are no reason to refuse a single-account sweep."""
    settings = load_settings(
        None,
        {
            "COLLECTOR_MAX_ACCOUNTS_IN_FLIGHT": str(Settings().max_accounts_in_flight),
            "COLLECTOR_RUN_ID": "nightly",
        },
        {"org.role_session_name": "collector-{run_id}"},
    )
    check_mode(settings)
    assert settings.run_id == "nightly"
