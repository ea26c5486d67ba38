"""A stop request (SIGTERM, SIGINT) shared by every sweep of a process, running or yet to start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar


class Stoppable(Protocol):
    """Anything a stop reaches: an account sweep, the organizations access report."""

    def stop(self, grace: float) -> None: ...


S = TypeVar("S", bound=Stoppable)


class Shutdown:
    """A stop request, passed to every sweep running now and to each one started after it."""

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.requested = False
        self._sweeps: set[Stoppable] = set()

    def request(self) -> bool:
        """Stop every running sweep gracefully; False when none is running yet (start-up)."""
        self.requested = True
        for sweep in list(self._sweeps):
            sweep.stop(self.grace)
        return bool(self._sweeps)

    @contextmanager
    def watching(self, sweep: S) -> Iterator[S]:
        """Register `sweep` for as long as it runs; stop it at once if a stop came first."""
        if self.requested:
            sweep.stop(self.grace)
        self._sweeps.add(sweep)
        try:
            yield sweep
        finally:
            self._sweeps.discard(sweep)
