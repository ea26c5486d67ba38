"""Organisation sweeps through the CLI: the arguments every test gives, and the manifest it reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from collector.emulator.orgserver import Organization

ROLE = "collector-audit"


def org_args(org: Organization, *extra: str) -> list[str]:
    return [
        "sweep", "--org", "--role-name", ROLE, "--endpoint-url", org.endpoint,
        "--output", "out/{account_id}.jsonl", "--no-progress", *extra,
    ]  # fmt: skip


def manifest_of(cwd: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((cwd / "out" / "manifest.json").read_text())
    return document
