"""The seeded, deterministic model of who used which service and action, when and where."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from collector.emulator.catalog import GLOBAL_SERVICES, POPULAR_SERVICES, REGIONS

TRACKING_DAYS = 400  # IAM keeps at least 400 days of last-accessed history
_DORMANT_SHARE = 0.2  # entities that used nothing in the tracking period
_POPULAR_SHARE = 0.55
_LONG_TAIL_SHARE = 0.06
_ACTION_SHARE = 0.5
_SCALE = float(1 << 64)


def stable_uniform(seed: int, *parts: str) -> float:
    """A uniform draw in [0, 1) that depends only on the seed and the key parts."""
    digest = hashlib.blake2b("|".join((str(seed), *parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


@dataclass(frozen=True, slots=True)
class Access:
    """One entity's most recent use of a service or action."""

    time: datetime
    region: str


@dataclass(frozen=True, slots=True)
class ActivityModel:
    """Answers "when did entity X last use namespace Y" from a hash of seed, entity and key.

    `now` is captured once when the emulator starts, so every report and the
    ground truth agree on every timestamp.
    """

    seed: int
    now: datetime

    def _uniform(self, *parts: str) -> float:
        return stable_uniform(self.seed, *parts)

    def _region(self, entity_arn: str, namespace: str, *key: str) -> str:
        if namespace in GLOBAL_SERVICES:
            return "us-east-1"
        pick = self._uniform("region", entity_arn, namespace, *key)
        return REGIONS[int(pick * len(REGIONS))]

    def service_access(self, entity_arn: str, namespace: str) -> Access | None:
        """The entity's last use of the namespace, or None if it never used it."""
        if self._uniform("dormant", entity_arn) < _DORMANT_SHARE:
            return None
        share = _POPULAR_SHARE if namespace in POPULAR_SERVICES else _LONG_TAIL_SHARE
        if self._uniform("uses", entity_arn, namespace) >= share:
            return None
        age = int(self._uniform("age", entity_arn, namespace) * TRACKING_DAYS * 86400)
        return Access(self.now - timedelta(seconds=age), self._region(entity_arn, namespace))

    def action_access(
        self, entity_arn: str, namespace: str, action: str, service: Access | None
    ) -> Access | None:
        """The entity's last use of a tracked action; never later than its use of the service."""
        if service is None or self._uniform("acts", entity_arn, namespace, action) >= _ACTION_SHARE:
            return None
        # An action used at most 30 days before the service's last use, so the
        # service row stays the most recent use of anything in it.
        before = int(self._uniform("action-age", entity_arn, namespace, action) * 30 * 86400)
        return Access(
            service.time - timedelta(seconds=before),
            self._region(entity_arn, namespace, action),
        )
