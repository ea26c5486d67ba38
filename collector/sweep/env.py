"""What every stage worker of one account sweep shares: read-only, built by the sweep."""

from __future__ import annotations

from dataclasses import dataclass

from collector.aws.iam import IamApi
from collector.config.settings import DiscoverySettings
from collector.models import Counters, EntitiesMode, Granularity, RunContext


@dataclass(frozen=True)
class StageEnv:
    """The AWS calls, the run's identity, its live counters and the settings stages read."""

    api: IamApi
    run: RunContext
    counters: Counters
    granularity: Granularity
    entities: EntitiesMode
    discovery: DiscoverySettings
    job_deadline: float  # seconds from generation until a job in progress is given up
