"""deploy/image/pipconf.py: the machine's pip settings become build secrets and volumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PIPCONF = Path(__file__).resolve().parents[2] / "deploy" / "image" / "pipconf.py"


def test_pip_settings_reach_the_build_as_secrets_and_read_only_volumes(tmp_path: Path) -> None:
    """Certificate -> secret at the mount point; local index, find-links and constraints file ->
    volumes; remote URLs kept."""
    (tmp_path / "pypi" / "simple").mkdir(parents=True)
    (tmp_path / "constraints.txt").write_text("torch<=2.14.1\n")
    (tmp_path / "wheels").mkdir()
    (tmp_path / "ca.pem").write_text("not a real certificate")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")} | {
        "PIP_CONFIG_FILE": os.devnull,  # no file of this machine: only what the test sets
        "PIP_INDEX_URL": f"file://{tmp_path}/pypi/simple",
        "PIP_EXTRA_INDEX_URL": "https://mirror.invalid/simple",
        "PIP_FIND_LINKS": str(tmp_path / "wheels"),
        "PIP_CERT": str(tmp_path / "ca.pem"),
        "PIP_CONSTRAINT": str(tmp_path / "constraints.txt"),
    }
    conf = tmp_path / "build-pip.conf"
    proc = subprocess.run(
        [sys.executable, str(PIPCONF), sys.executable, str(conf)],
        capture_output=True, text=True, env=env, timeout=60, check=True,
    )  # fmt: skip
    assert proc.stdout.splitlines() == [
        f"--secret=id=pipconf,src={conf}",
        f"--secret=id=pipca,src={tmp_path}/ca.pem",
        f"--volume={tmp_path}/constraints.txt:{tmp_path}/constraints.txt:ro",
        f"--volume={tmp_path}/pypi:{tmp_path}/pypi:ro",  # the index's parent: pages link ../../
        f"--volume={tmp_path}/wheels:{tmp_path}/wheels:ro",
    ]
    text = conf.read_text()
    assert "cert = /run/secrets/pip-ca.pem" in text
    assert f"index-url = file://{tmp_path}/pypi/simple" in text
    assert "extra-index-url = https://mirror.invalid/simple" in text
    assert f"constraint = {tmp_path}/constraints.txt" in text
    assert "config-file" not in text and str(tmp_path / "ca.pem") not in text
