"""The README's links (it is not part of the docs site, whose build checks its own)."""

from __future__ import annotations

import re

from tests.support.docblocks import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)\s]*)?\)")


def test_every_relative_link_of_the_readme_names_a_file() -> None:
    """A moved or renamed page cannot leave the README pointing nowhere."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t for t in LINK.findall(text) if "://" not in t]
    assert len(targets) > 10
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing


def test_the_readme_stays_short() -> None:
    """What and why, two commands, a quick start, the reports, links: the rest is in docs/."""
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 300
