"""`collector emulate`: serve the emulator on 127.0.0.1 until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from types import FrameType

from collector.emulator.argtypes import share
from collector.emulator.faults import Faults, LogNormal, Uniform
from collector.emulator.orgcommand import add_org_arguments, org_options_from
from collector.emulator.orgserver import running_organization
from collector.emulator.server import EmulatorOptions, running_emulator

# Jobs take a moment by default, as on IAM, so a client that never polls fails here too.
# (EmulatorOptions' own default stays instant: the test suite starts hundreds of jobs.)
DEFAULT_LATENCY = LogNormal(median=1.0, sigma=0.5)


def _rate(text: str) -> tuple[str, float]:
    operation, sep, value = text.partition("=")
    try:
        rate = float(value)
    except ValueError:
        rate = 0.0
    if not sep or not operation or rate <= 0:
        raise argparse.ArgumentTypeError(f"expected OPERATION=CALLS_PER_SECOND > 0, got {text!r}")
    return operation, rate


def _latency(text: str) -> float | LogNormal | Uniform:
    try:
        if text.startswith("lognormal:"):
            _, median, sigma = text.split(":")
            return LogNormal(float(median), float(sigma))
        if text.startswith("uniform:"):
            _, low, high = text.split(":")
            return Uniform(float(low), float(high))
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected SECONDS, lognormal:MEDIAN:SIGMA or uniform:LOW:HIGH, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError("latency must be >= 0")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `collector emulate`."""
    parser.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 to serve on (0 = pick a free one)"
    )
    parser.add_argument(
        "--principals",
        type=int,
        default=100,
        help="principals in the seeded account, split over users, groups, roles and policies",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the account and its activity")
    parser.add_argument(
        "--wide-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="share of customer-managed policies that allow `*` and are attached to 20-200 "
        "users, groups and roles (wide reports; default 0)",
    )
    faults = parser.add_argument_group("fault knobs")
    faults.add_argument(
        "--rate",
        type=_rate,
        action="append",
        default=[],
        metavar="OP=N",
        help="token bucket of N calls/s (burst: 1 s) for an IAM operation, answering "
        "Throttling beyond it; repeatable, e.g. --rate GenerateServiceLastAccessedDetails=20",
    )
    faults.add_argument(
        "--throttle-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="random share of IAM calls answered Throttling (400)",
    )
    faults.add_argument(
        "--transient-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="random share of IAM calls answered ServiceFailure (500) or ServiceUnavailable (503)",
    )
    faults.add_argument(
        "--latency",
        type=_latency,
        default=DEFAULT_LATENCY,
        metavar="SECONDS|lognormal:MEDIAN:SIGMA|uniform:LOW:HIGH",
        help="how long a report job stays IN_PROGRESS: fixed, lognormal or uniform "
        f"(default lognormal:{DEFAULT_LATENCY.median:g}:{DEFAULT_LATENCY.sigma:g}; "
        "0 = jobs complete at once)",
    )
    faults.add_argument(
        "--failed-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="share of principals whose jobs end FAILED with an Error",
    )
    faults.add_argument(
        "--stuck-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="share of principals whose jobs stay IN_PROGRESS forever",
    )
    faults.add_argument(
        "--deleted-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="share of principals that are listed but answer NoSuchEntity on generation",
    )
    faults.add_argument(
        "--lost-job-share",
        type=share,
        metavar="SHARE",
        default=0.0,
        help="share of principals whose first job answers NoSuchEntity when read",
    )
    faults.add_argument(
        "--short-page-max",
        type=int,
        default=0,
        metavar="N",
        help="pages hold 1..N items (fewer than MaxItems) while IsTruncated is true (0 = off)",
    )
    faults.add_argument(
        "--access-denied",
        action="append",
        default=[],
        metavar="OP",
        help="operation answering AccessDenied (403): IAM, sts:GetCallerIdentity, S3 (PutObject, "
        "CreateMultipartUpload, ListMultipartUploads, ...) or, with --accounts, Organizations; "
        "repeatable, e.g. --access-denied ListUsers",
    )
    faults.add_argument(
        "--markerless",
        action="append",
        default=[],
        metavar="OP",
        help="IAM operation whose truncated pages say IsTruncated=true without a Marker (an "
        "answer the API forbids; with --short-page-max); repeatable, e.g. --markerless ListUsers",
    )
    add_org_arguments(parser)


def options_from(args: argparse.Namespace) -> EmulatorOptions:
    """Parsed arguments as emulator options; raises ValueError on inconsistent knobs."""
    faults = Faults(
        rate_limits=dict(args.rate),
        throttle_share=args.throttle_share,
        transient_share=args.transient_share,
        latency=args.latency,
        failed_share=args.failed_share,
        stuck_share=args.stuck_share,
        deleted_share=args.deleted_share,
        lost_job_share=args.lost_job_share,
        short_page_max=args.short_page_max,
        access_denied=frozenset(args.access_denied),
        markerless=frozenset(args.markerless),
    )
    return EmulatorOptions(
        principals=args.principals,
        seed=args.seed,
        faults=faults,
        port=args.port,
        wide_share=args.wide_share,
    )


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; the endpoint URL is the first line on stdout."""
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    try:
        options = options_from(args)
        org = org_options_from(args, options)
    except ValueError as exc:
        print(f"collector emulate: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    try:
        serving = running_organization(org) if org else running_emulator(options)
        with serving as emulator:
            print(emulator.endpoint, flush=True)
            while not stop.wait(0.5):
                pass
    except OSError as exc:
        print(f"collector emulate: cannot serve on port {options.port}: {exc}", file=sys.stderr)
        return 1
    return 0
