"""The organisation options of `collector emulate` (`--accounts N` and its knobs)."""

from __future__ import annotations

import argparse

from collector.emulator.argtypes import count, seconds, share
from collector.emulator.organization import MEMBER_FAULTS, OrgOptions
from collector.emulator.server import EmulatorOptions

# Options that mean nothing without --accounts, with their defaults.
_ORG_ONLY: dict[str, object] = {
    "audit_role": "collector-audit",
    "external_id": None,
    "suspended": 0,
    "pending_closure": 0,
    "without_role": 0,
    "scp_deny": [],
    "report_latency": 0.0,
    "report_failed_share": 0.0,
    "member_fault": [],
    "session_seconds": None,
}


def _member_fault(text: str) -> tuple[int, str]:
    number, sep, fault = text.partition("=")
    if not sep or not number.isascii() or not number.isdigit() or fault not in MEMBER_FAULTS:
        raise argparse.ArgumentTypeError(
            f"expected MEMBER=FAULT (MEMBER a number from 1, FAULT one of "
            f"{', '.join(MEMBER_FAULTS)}), got {text!r}"
        )
    return int(number), fault


def _lifetime(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seconds >= 1, got {text!r}")
    return int(text)


def add_org_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that turn the emulator into an AWS Organization."""
    org = parser.add_argument_group("organisation (with --accounts)")
    org.add_argument(
        "--accounts",
        type=count,
        default=0,
        metavar="N",
        help="serve an organisation of N accounts, the management account included "
        "(each seeded with --principals principals); 0 = one account (default)",
    )
    org.add_argument(
        "--audit-role",
        default=_ORG_ONLY["audit_role"],
        metavar="NAME",
        help="role in every member account that trusts the management account "
        "(default collector-audit)",
    )
    org.add_argument(
        "--external-id",
        default=None,
        metavar="ID",
        help="the audit role's trust demands this sts:ExternalId",
    )
    org.add_argument(
        "--suspended", type=count, default=0, metavar="N", help="member accounts SUSPENDED"
    )
    org.add_argument(
        "--pending-closure",
        type=count,
        default=0,
        metavar="N",
        help="member accounts PENDING_CLOSURE",
    )
    org.add_argument(
        "--without-role",
        type=count,
        default=0,
        metavar="N",
        help="member accounts without the audit role",
    )
    org.add_argument(
        "--scp-deny",
        action="append",
        default=[],
        metavar="NAMESPACE",
        help="service an SCP on the `sandbox` OU denies; repeatable",
    )
    org.add_argument(
        "--report-latency",
        type=seconds,
        default=0.0,
        metavar="SECONDS",
        help="how long an organizations access report stays IN_PROGRESS (default 0)",
    )
    org.add_argument(
        "--report-failed-share",
        type=share,
        default=0.0,
        metavar="SHARE",
        help="share of entity paths whose organizations access reports end FAILED",
    )
    org.add_argument(
        "--member-fault",
        type=_member_fault,
        action="append",
        default=[],
        metavar="MEMBER=FAULT",
        help="what one member account does wrong (members numbered from 1, as their names end): "
        + "; ".join(f"{name}: {what}" for name, what in MEMBER_FAULTS.items())
        + "; repeatable",
    )
    org.add_argument(
        "--session-seconds",
        type=_lifetime,
        default=None,
        metavar="SECONDS",
        help="lifetime of the credentials AssumeRole grants, whatever was asked (default: what "
        "was asked, as AWS)",
    )


def org_options_from(args: argparse.Namespace, base: EmulatorOptions) -> OrgOptions | None:
    """The organisation to serve, or None without --accounts; raises ValueError."""
    if not getattr(args, "accounts", 0):
        given = [
            "--" + name.replace("_", "-")
            for name, default in _ORG_ONLY.items()
            if getattr(args, name, default) != default
        ]
        if given:
            raise ValueError(f"{', '.join(given)} needs --accounts N")
        return None
    return OrgOptions(
        accounts=args.accounts,
        principals=base.principals,
        seed=base.seed,
        faults=base.faults,
        port=base.port,
        audit_role=args.audit_role,
        external_id=args.external_id,
        suspended=args.suspended,
        pending_closure=args.pending_closure,
        without_role=args.without_role,
        scp_denied=tuple(args.scp_deny),
        report_latency=args.report_latency,
        report_failed_share=args.report_failed_share,
        member_faults=tuple(args.member_fault),
        session_seconds=args.session_seconds,
    )
