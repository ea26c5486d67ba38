"""The emulator's lifecycle: seed the account, serve moto plus our middleware on 127.0.0.1, stop."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from moto.iam.models import IAMBackend, iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from collector.emulator.account import Layout, seed_account
from collector.emulator.activity import ActivityModel
from collector.emulator.app import EmulatorApp
from collector.emulator.faults import FaultInjector, Faults
from collector.emulator.groundtruth import ground_truth
from collector.emulator.jobstore import JobStore
from collector.emulator.operations import AccessAdvisor
from collector.emulator.serving import serving
from collector.models import EntitiesMode

DEFAULT_ACCOUNT_ID = "123456789012"

log = logging.getLogger("collector.emulator")

# moto keeps its state in process-wide dicts keyed by account, so two live
# emulators must not share an account; this guards that, nothing else.
_accounts_in_use: set[str] = set()
_accounts_lock = threading.Lock()


@dataclass(frozen=True, slots=True)
class EmulatorOptions:
    """What to seed and serve."""

    principals: int = 100
    seed: int = 0
    faults: Faults = field(default_factory=Faults)
    port: int = 0  # 0 = a free port
    account_id: str = DEFAULT_ACCOUNT_ID
    wide_share: float = 0.0  # customer policies allowing `*`, attached to 20-200 principals

    def __post_init__(self) -> None:
        if self.principals < 0:
            raise ValueError("principals must be >= 0")
        if not 0 <= self.port <= 65535:
            raise ValueError("port must be within 0..65535")
        if not 0.0 <= self.wide_share <= 1.0:
            raise ValueError("wide_share must be within 0..1")
        if len(self.account_id) != 12 or not (
            self.account_id.isascii() and self.account_id.isdigit()
        ):
            raise ValueError("account_id must be 12 digits")


class Emulator:
    """A running emulator: where it listens, and what a correct sweep of it must output."""

    def __init__(
        self,
        options: EmulatorOptions,
        endpoint: str,
        layout: Layout,
        seed_seconds: float,
        advisor: AccessAdvisor,
    ) -> None:
        self.options = options
        self.endpoint = endpoint
        self.account_id = options.account_id
        self.layout = layout
        self.seed_seconds = seed_seconds
        self._advisor = advisor

    def ground_truth(
        self,
        granularity: str = "SERVICE_LEVEL",
        entities: EntitiesMode = "accessed",
        aws_managed_policies: bool = False,
        policy_documents: bool = False,
    ) -> list[dict[str, Any]]:
        """The schema-1 records (without run and job fields) a correct sweep writes."""
        return ground_truth(
            self._advisor.directory(),
            self._advisor.activity,
            self.options.faults,
            self.account_id,
            granularity=granularity,
            entities=entities,
            aws_managed_policies=aws_managed_policies,
            with_policy_documents=policy_documents,
        )


@contextmanager
def _claim(account_id: str) -> Iterator[None]:
    with _accounts_lock:
        if account_id in _accounts_in_use:
            raise RuntimeError(
                f"an emulator for account {account_id} is already running in this process; "
                "give the second one another account_id"
            )
        _accounts_in_use.add(account_id)
    try:
        yield
    finally:
        with _accounts_lock:
            _accounts_in_use.discard(account_id)


@contextmanager
def running_emulator(options: EmulatorOptions | None = None) -> Iterator[Emulator]:
    """Seed an account, serve it on 127.0.0.1 in a thread, and tear both down on exit."""
    options = options or EmulatorOptions()
    with _claim(options.account_id):
        backend: IAMBackend = iam_backends[options.account_id]["global"]
        backend.reset()
        try:
            started = time.perf_counter()
            layout = seed_account(backend, options.principals, options.seed, options.wide_share)
            seed_seconds = time.perf_counter() - started
            # One reference "now" for every report and the ground truth.
            activity = ActivityModel(options.seed, datetime.now(UTC).replace(microsecond=0))
            injector = FaultInjector(options.faults, options.seed)
            advisor = AccessAdvisor(backend, activity, options.faults, injector, JobStore())
            app = EmulatorApp(
                DomainDispatcherApplication(create_backend_app),
                advisor,
                injector,
                options.account_id,
            )
            with serving(app, options.port, "collector-emulator") as endpoint:
                log.info(
                    "collector.emulator.started endpoint=%s principals=%d seed=%d "
                    "seed_seconds=%.3f",
                    endpoint,
                    options.principals,
                    options.seed,
                    seed_seconds,
                )
                yield Emulator(options, endpoint, layout, seed_seconds, advisor)
            log.info("collector.emulator.stopped endpoint=%s", endpoint)
        finally:
            backend.reset()
