"""An emulated organisation's lifecycle: build it, seed every account, serve, tear down."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from moto.iam.models import iam_backends
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sts.models import sts_backends

from collector.emulator.account import seed_account
from collector.emulator.activity import Access, ActivityModel
from collector.emulator.app import EmulatorApp
from collector.emulator.faults import FaultInjector
from collector.emulator.groundtruth import ground_truth
from collector.emulator.jobstore import JobStore
from collector.emulator.operations import AccessAdvisor
from collector.emulator.orgaccess import FAILURE, OrgAccessReports, fails
from collector.emulator.organization import (
    PARTITION,
    OrgAccount,
    OrgLayout,
    OrgOptions,
    add_audit_role,
    clear_organization,
    plan,
    write_organization,
)
from collector.emulator.orgapp import OrgApp
from collector.emulator.orgreport import OrgReport, Scps, account_usage, build_org_report, resolve
from collector.emulator.server import _claim
from collector.emulator.serving import serving
from collector.emulator.wire import timestamp
from collector.models import EntitiesMode

log = logging.getLogger("collector.emulator")


class ReportSource:
    """Builds organizations access reports from the live state: the SCPs in moto's
    Organizations and each account's usage (cached until that account's IAM changes)."""

    def __init__(
        self, layout: OrgLayout, advisors: dict[str, AccessAdvisor], org_backend: Any
    ) -> None:
        self.layout = layout
        self.advisors = advisors
        self.org_backend = org_backend
        self._usage: dict[str, tuple[object, dict[str, Access]]] = {}
        self._lock = threading.Lock()

    def usage(self, account_id: str) -> dict[str, Access]:
        """An account's last use of each namespace."""
        advisor = self.advisors[account_id]
        directory = advisor.directory()
        with self._lock:
            cached = self._usage.get(account_id)
            if cached is not None and cached[0] is directory:
                return cached[1]
        usage = account_usage(directory, advisor.activity)
        with self._lock:
            self._usage[account_id] = (directory, usage)
        return usage

    def report(self, entity_path: str, policy_id: str | None = None) -> OrgReport:
        """The report of an entity path; raises BadEntityPath or UnknownPolicy."""
        scps = Scps.read(self.org_backend)
        return build_org_report(self.layout, scps, self.usage, entity_path, policy_id)


class Organization:
    """A running organisation: where it listens, its layout, and what correct sweeps output."""

    def __init__(
        self,
        options: OrgOptions,
        endpoint: str,
        layout: OrgLayout,
        advisors: dict[str, AccessAdvisor],
        reports: ReportSource,
        seed_seconds: float,
        access_reports: OrgAccessReports | None = None,
        app: OrgApp | None = None,
    ) -> None:
        self.options = options
        self.endpoint = endpoint
        self.layout = layout
        self.organization_id = layout.organization_id
        self.root_id = layout.root_id
        self.management_account_id = layout.management_account_id
        self.accounts = layout.accounts
        self.units = layout.units
        self.seed_seconds = seed_seconds
        self._advisors = advisors
        self._reports = reports
        # The server's report jobs (tests freeze its clock to hold a job IN_PROGRESS).
        self.access_reports = access_reports
        # The router (tests move its clock to expire assumed-role sessions).
        self.app = app

    def assume_role_calls(self, account_id: str) -> int:
        """How many AssumeRole requests into the account the server has received."""
        return 0 if self.app is None else self.app.assume_role_calls(account_id)

    def account(self, account_id: str) -> OrgAccount:
        """The account with this id; raises KeyError."""
        found = self.layout.account(account_id)
        if found is None:
            raise KeyError(account_id)
        return found

    def role_arn(self, account_id: str) -> str:
        """The audit role's ARN in an account (whether or not the role exists there)."""
        return f"arn:aws:iam::{account_id}:role/{self.options.audit_role}"

    def ground_truth(
        self,
        account_id: str,
        granularity: str = "SERVICE_LEVEL",
        entities: EntitiesMode = "accessed",
        aws_managed_policies: bool = False,
    ) -> list[dict[str, Any]]:
        """The schema-1 records a correct sweep of one account writes (as Emulator's)."""
        advisor = self._advisors[self.account(account_id).id]
        return ground_truth(
            advisor.directory(),
            advisor.activity,
            self.options.faults,
            account_id,
            granularity=granularity,
            entities=entities,
            aws_managed_policies=aws_managed_policies,
        )

    def org_report(self, entity_path: str, policy_id: str | None = None) -> OrgReport:
        """The organizations access report of an entity path, as the server computes it."""
        return self._reports.report(entity_path, policy_id)

    def org_access_truth(self, entity_path: str, policy_id: str | None = None) -> dict[str, Any]:
        """What GetOrganizationsAccessReport must answer for an entity path, as plain data."""
        report = self.org_report(entity_path, policy_id)
        target = resolve(self.layout, entity_path)
        last = target.chain[-1]
        kind = (
            "ACCOUNT"
            if self.layout.account(last)
            else "ROOT"
            if len(target.chain) == 1
            else ("ORGANIZATIONAL_UNIT")
        )
        failed = fails(self.options.seed, self.options.report_failed_share, entity_path)
        return {
            "entity_path": report.entity_path,
            "target_id": last,
            "target_type": kind,
            "status": "FAILED" if failed else "COMPLETED",
            "error_code": FAILURE[0] if failed else None,
            "services_accessible": None if failed else report.accessible,
            "services_not_accessed": None if failed else report.not_accessed,
            "access_details": []
            if failed
            else [
                {
                    "service_namespace": row.namespace,
                    "service_name": row.name,
                    "region": row.last.region if row.last else None,
                    "entity_path": row.entity_path,
                    "last_authenticated_time": timestamp(row.last.time) if row.last else None,
                    "total_authenticated_entities": row.total,
                }
                for row in report.rows
            ],
        }


@contextmanager
def running_organization(options: OrgOptions | None = None) -> Iterator[Organization]:
    """Build and seed an organisation, serve it on 127.0.0.1 in a thread, tear down on exit."""
    options = options or OrgOptions()
    layout = plan(options)
    with ExitStack() as claims:
        for account in layout.accounts:
            claims.enter_context(_claim(account.id))
        try:
            yield from _serve(options, layout)
        finally:
            for account in layout.accounts:
                iam_backends[account.id]["global"].reset()
                sts_backends[account.id][PARTITION].reset()
            clear_organization(layout)


def _serve(options: OrgOptions, layout: OrgLayout) -> Iterator[Organization]:
    started = time.perf_counter()
    # One reference "now" for every report and every ground truth of the organisation.
    now = datetime.now(UTC).replace(microsecond=0)
    moto_app = DomainDispatcherApplication(create_backend_app)
    apps: dict[str, EmulatorApp] = {}
    advisors: dict[str, AccessAdvisor] = {}
    for account in layout.accounts:
        backend = iam_backends[account.id]["global"]
        backend.reset()
        seed_account(backend, options.principals, account.seed)
        if account.audit_role:
            permitted = account.fault != "no-permissions"
            add_audit_role(backend, options, layout.management_account_id, permitted=permitted)
        iam_faults = options.faults
        if account.fault == "iam-5xx":
            iam_faults = replace(iam_faults, transient_share=1.0)
        injector = FaultInjector(iam_faults, account.seed)
        activity = ActivityModel(account.seed, now)
        advisors[account.id] = AccessAdvisor(
            backend, activity, options.faults, injector, JobStore()
        )
        apps[account.id] = EmulatorApp(moto_app, advisors[account.id], injector, account.id)
    org_backend = write_organization(layout, options)
    seed_seconds = time.perf_counter() - started
    source = ReportSource(layout, advisors, org_backend)
    management = apps[layout.management_account_id]
    reports = OrgAccessReports(
        source.report,
        management.injector,
        options.seed,
        options.report_latency,
        options.report_failed_share,
    )
    states = {account.id: account.state for account in layout.accounts}
    member_faults = {account.id: account.fault for account in layout.accounts if account.fault}
    app = OrgApp(
        moto_app, apps, layout.management_account_id, states, reports,
        faults=member_faults, session_seconds=options.session_seconds,
    )  # fmt: skip
    with serving(app, options.port, "collector-emulator-org") as endpoint, app.closing():
        organization = Organization(
            options, endpoint, layout, advisors, source, seed_seconds, access_reports=reports,
            app=app,
        )  # fmt: skip
        log.info(
            "collector.emulator.org_started endpoint=%s organization=%s management=%s "
            "accounts=%d principals=%d seed=%d seed_seconds=%.3f",
            endpoint,
            layout.organization_id,
            layout.management_account_id,
            len(layout.accounts),
            options.principals,
            options.seed,
            seed_seconds,
        )
        yield organization
    log.info("collector.emulator.org_stopped endpoint=%s", endpoint)
