"""Where an org run's own files go (the manifest, the access report) and what they must not hit."""

from __future__ import annotations

import os
from datetime import UTC, datetime

from collector.config.settings import Settings
from collector.errors import ConfigError
from collector.org.accessrun import output_location
from collector.org.shard import Shard
from collector.template import OutputTemplate


def manifest_path(settings: Settings, run_id: str, shard: Shard | None, now: datetime) -> str:
    """`--manifest` rendered, or manifest.json (manifest-{shard}.json) beside the account files:
    in the directory (or S3 prefix) the output template renders to."""
    values = {
        "run_id": run_id,
        "date": now.astimezone(UTC).strftime("%Y-%m-%d"),
        "shard": "" if shard is None else str(shard.index),
    }
    if settings.manifest is not None:
        try:
            return settings.manifest.format(**values)
        except (KeyError, ValueError, IndexError) as exc:
            raise ConfigError(
                f"manifest: {settings.manifest!r} can use only {{run_id}}, {{date}} and "
                f"{{shard}} ({exc})"
            ) from None
    name = "manifest.json" if shard is None else f"manifest-{shard.index}.json"
    scheme = "s3://" if settings.output.startswith("s3://") else ""
    directory: list[str] = []
    for part in settings.output.removeprefix(scheme).split("/")[:-1]:
        if "{account_id}" in part:
            break
        directory.append(part.format(**values, account_id=""))
    return scheme + "/".join([*directory, name])


def _comparable(location: str) -> str:
    """A local path made absolute and normal (`./out/../out/x` is `out/x`); an S3 URI as given."""
    return location if location.startswith("s3://") else os.path.abspath(location)


def check_placement(settings: Settings, manifest: str, run_id: str, shard: Shard | None) -> None:
    """ConfigError (exit 2, before any AWS call) when the run's files would overwrite each other:
    shards of one run sharing a `--manifest` (it lacks {shard}), or the manifest (or the access
    report beside it) where an account's output or its `.part` could go."""
    if shard is not None and settings.manifest is not None and "{shard}" not in settings.manifest:
        raise ConfigError(
            f"--manifest {settings.manifest!r} needs {{shard}} in a sharded run: every shard "
            "publishes its own manifest, and they would replace each other "
            "(e.g. --manifest 'out/manifest-{shard}.json')"
        )
    template = OutputTemplate.parse(_comparable(settings.output))
    own = [manifest]
    if settings.org_access_report:
        own.append(output_location(manifest, run_id))
    for location in own:
        if template.could_render(_comparable(location)):
            raise ConfigError(
                f"{location!r} is where --output {settings.output!r} may write an account's "
                "export; choose a --manifest path (and directory) the output template cannot "
                "produce"
            )
