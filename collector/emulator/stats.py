"""Per-second counts of the IAM calls the emulator answered, by operation and outcome."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

SERVED = "served"  # the outcome of a call no fault knob refused
# A served call that named a Marker is also counted as `{operation}+Marker` (not a second call).
MARKER_SUFFIX = "+Marker"

# The recorder an EmulatorApp built in this context reports to. A context variable rather
# than an EmulatorOptions field: the counts are a benchmark's concern, and the app captures
# the recorder when it is built, so the server threads never read the variable.
_current: ContextVar[ServedCalls | None] = ContextVar("collector_emulator_stats", default=None)


class ServedCalls:
    """Thread-safe counts of IAM calls per (wall-clock second, operation, outcome).

    The outcome is `served` (answered by the emulator or moto, whatever the answer) or the
    code of the fault that refused the call (`Throttling`, `ServiceFailure`, ...). Seconds are
    Unix time, so a client in another process can cut the counts by its own start and end.
    """

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._counts: dict[tuple[int, str, str], int] = {}
        self._lock = threading.Lock()

    def record(self, operation: str, outcome: str) -> None:
        """Count one call of `operation` that ended with `outcome`."""
        key = (int(self._clock()), operation, outcome)
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + 1

    def rows(self) -> list[dict[str, Any]]:
        """Every count as `{second, operation, outcome, calls}`, ordered by second."""
        with self._lock:
            items = sorted(self._counts.items())
        return [
            {"second": second, "operation": operation, "outcome": outcome, "calls": calls}
            for (second, operation, outcome), calls in items
        ]

    def write(self, path: Path) -> None:
        """Write the counts as JSON, atomically (a reader never sees half a file)."""
        part = path.with_name(path.name + ".part")
        part.write_text(json.dumps({"calls": self.rows()}), encoding="utf-8")
        os.replace(part, path)


@contextmanager
def recording(stats: ServedCalls) -> Iterator[ServedCalls]:
    """Emulators started inside this block count their IAM calls into `stats`."""
    token = _current.set(stats)
    try:
        yield stats
    finally:
        _current.reset(token)


def current() -> ServedCalls | None:
    """The recorder of the enclosing `recording` block, if any."""
    return _current.get()
