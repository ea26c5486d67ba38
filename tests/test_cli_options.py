"""`collector sweep`'s options come from the settings schema: each sets its key, with its help."""

from __future__ import annotations

import subprocess

import pytest

from collector.cli import _overrides, build_parser
from collector.config.loading import env_name, load_settings, options
from tests.support.cli import COLLECTOR


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
