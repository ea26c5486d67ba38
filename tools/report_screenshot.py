"""The page `make report-screenshot` renders: `report unused --output DIR/report.html` of an
emulated organisation's sweep, so it shows account names (from the run's manifest, found beside
the files) and a table cut at 2,000 rows that links its CSV.

Usage: python tools/report_screenshot.py DIR  (DIR is emptied first)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import running_organization

# Three accounts of 150 principals: ~7,000 unused rows, a chart short enough for the shot.
OPTIONS = OrgOptions(accounts=3, principals=150, seed=1, faults=Faults(latency=0.0))
AS_OF = "2026-12-01"  # a fixed date: the same sweep always makes the same page
COLLECTOR = str(Path(sys.executable).with_name("collector"))


def main(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    # The emulator's dummy keys only; nothing of the user's environment reaches AWS.
    env = {"PATH": os.environ["PATH"], "AWS_ACCESS_KEY_ID": "testing"}
    env |= {"AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    with running_organization(OPTIONS) as org:
        subprocess.run(  # noqa: S603 (our own CLI, arguments fixed here)
            [COLLECTOR, "sweep", "--org", "--role-name", OPTIONS.audit_role,
             "--endpoint-url", org.endpoint, "--output", str(directory / "{account_id}.jsonl"),
             "--no-progress"],
            env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
    subprocess.run(  # noqa: S603 (our own CLI, arguments fixed here)
        [COLLECTOR, "report", "unused", str(directory / "*.jsonl"), "--as-of", AS_OF,
         "--output", str(directory / "report.html")],
        env=env, check=True,
    )  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
