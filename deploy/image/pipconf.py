"""Carry this machine's pip configuration into an image build, never into the Dockerfile.

Reads `pip config list` (files and PIP_* variables, in pip's own precedence), writes one pip.conf
for use inside the build (the certificate moved to the secret mount point), and prints the
buildah arguments that bring it in: the pip.conf and the CA bundle as build secrets, and every
local index or find-links directory and constraints file as a read-only volume of the RUN steps.
"""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

CERT_IN_BUILD = "/run/secrets/pip-ca.pem"  # where the Dockerfile's secret mount puts it
PATH_KEYS = {"find-links", "index-url", "extra-index-url"}
FILE_KEYS = {"constraint"}  # files pip reads during the build: mounted at the same path
HOST_ONLY_KEYS = {"config-file"}  # PIP_CONFIG_FILE names a host file; its settings are listed


def pip_settings(python: str) -> dict[tuple[str, str], str]:
    """(section, key) -> value: the files as pip merged them, then PIP_* variables over them."""
    listing = subprocess.run(  # noqa: S603 - the python the Makefile was given
        [python, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    files: dict[tuple[str, str], str] = {}
    env: dict[tuple[str, str], str] = {}
    for line in listing.splitlines():
        name, _, raw = line.partition("=")
        section, _, key = name.rpartition(".")
        value = raw.strip().strip("'\"")
        if key in HOST_ONLY_KEYS:
            continue
        if section == ":env:":
            env["global", key] = value
        elif section:
            files[section, key] = value
    return files | env


def local_dir(location: str, key: str) -> Path | None:
    """The host directory a file:// or path location needs mounted.

    An index's parent: its pages link to ../../files.
    """
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        return None
    path = Path(parsed.path if parsed.scheme else location)
    if not path.exists():
        return None
    return path.parent if key != "find-links" and path.name == "simple" else path


def main() -> int:
    python, conf_out = sys.argv[1], Path(sys.argv[2])
    settings = pip_settings(python)
    parser = configparser.ConfigParser(interpolation=None)
    args: list[str] = [f"--secret=id=pipconf,src={conf_out}"]
    mounts: set[Path] = set()
    for (section, key), value in settings.items():
        if not parser.has_section(section):
            parser.add_section(section)
        if key == "cert":
            args.append(f"--secret=id=pipca,src={value}")
            value = CERT_IN_BUILD
        elif key in PATH_KEYS:
            mounts.update(d for loc in value.split() if (d := local_dir(loc, key)) is not None)
        elif key in FILE_KEYS:
            mounts.update(path for path in map(Path, value.split()) if path.is_file())
        parser.set(section, key, value)
    with conf_out.open("w") as handle:
        parser.write(handle)
    args += [f"--volume={d}:{d}:ro" for d in sorted(mounts)]
    print("\n".join(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
