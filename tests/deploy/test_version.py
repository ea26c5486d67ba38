"""One version: the package's, the distribution's, the images' the deploy files run, the changelog's."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from collector import __version__

ROOT = Path(__file__).resolve().parents[2]


def test_the_distribution_and_the_package_carry_one_version() -> None:
    """pyproject.toml's version is collector.__version__ (what -V and the run line say)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["version"] == __version__
    assert project["name"] == "access-advisor-collector"


def test_every_deploy_file_runs_the_image_of_this_version() -> None:
    """A release that forgets a deploy file's image tag would run last release's code there."""
    tags = [
        match
        for path in sorted((ROOT / "deploy").rglob("*"))
        if path.suffix in (".json", ".yaml")
        for match in re.findall(r"/collector:([\w.+-]+)", path.read_text(encoding="utf-8"))
    ]
    assert len(tags) >= 5
    assert set(tags) == {__version__}


def test_the_changelog_has_this_version() -> None:
    """The newest changelog entry is this version's."""
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    versions = re.findall(r"^## \[([^\]]+)\]", text, re.M)
    assert versions[0] == __version__
