"""`python -m bench` (`make bench`): flags to options, one run, where the results went."""

from __future__ import annotations

import argparse
import shlex
import sys
from dataclasses import replace
from pathlib import Path

from bench.report import rerender
from bench.scenarios import SCENARIOS, Scenario
from bench.suite import TOOL_NAMES, Options
from bench.suite import run as run_all

HERE = Path(__file__).resolve().parent


def _tools(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TOOL_NAMES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {', '.join(TOOL_NAMES)}, got {text!r}"
        )
    return names


def _scenarios(text: str) -> list[Scenario]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if names == ["all"]:
        return list(SCENARIOS.values())
    unknown = sorted(set(names) - set(SCENARIOS))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected all or a comma-separated subset of {', '.join(SCENARIOS)}, got {text!r}"
        )
    return [SCENARIOS[name] for name in names]


def parse(argv: list[str]) -> tuple[Options, bool]:
    """The run the flags ask for."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Sweep rate-limited emulated accounts with the collector (and, in the "
        "default scenario, its peers); write bench/results.json and results.md's tables.",
    )
    parser.add_argument(
        "--scenario",
        type=_scenarios,
        default=list(SCENARIOS.values()),
        metavar="NAMES",
        help=f"all (default) or a comma-separated subset of {','.join(SCENARIOS)}",
    )
    parser.add_argument("--principals", type=int, default=1000, help="single-account size (1000)")
    parser.add_argument(
        "--org-principals", type=int, default=200, help="principals per account of an org (200)"
    )
    parser.add_argument(
        "--org-accounts",
        type=int,
        default=None,
        metavar="N",
        help="accounts of the org-many organisation (1000); e.g. 400 for issue 27's must-show",
    )
    parser.add_argument("--seed", type=int, default=0, help="account seed (0)")
    parser.add_argument(
        "--only",
        type=_tools,
        default=list(TOOL_NAMES),
        metavar="TOOLS",
        help=f"comma-separated tools of the default scenario (all: {','.join(TOOL_NAMES)})",
    )
    parser.add_argument(
        "--sequential-subset",
        type=int,
        default=50,
        metavar="N",
        help="principals the sequential loop runs on, extrapolated to the account (50)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=None,
        metavar="COLLECTOR_KEY=VALUE",
        help="an extra, diagnostic collector row with this setting, e.g. "
        "COLLECTOR_FETCH_WORKERS=64; repeatable",
    )
    capacity = parser.add_mutually_exclusive_group()
    capacity.add_argument(
        "--capacity",
        dest="capacity",
        action="store_true",
        default=None,
        help="measure the emulator's capacity (default: when all tools run)",
    )
    capacity.add_argument("--no-capacity", dest="capacity", action="store_false")
    parser.add_argument(
        "--results-dir", type=Path, default=HERE, help="where results.md etc. go (bench/)"
    )
    parser.add_argument(
        "--render-only",
        action="store_true",
        help="only rewrite results.md's tables from results.json (after editing bench/report.py)",
    )
    args = parser.parse_args(argv)
    everything = set(args.only) == set(TOOL_NAMES)
    variants = args.variant or []
    if "collector" not in args.only:
        variants = []
    for variant in variants:
        if not variant.startswith("COLLECTOR_") or "=" not in variant:
            parser.error(f"--variant expects COLLECTOR_KEY=VALUE, got {variant!r}")
    if args.principals < 4 or args.org_principals < 4:
        parser.error("--principals and --org-principals must be >= 4")
    scenarios = args.scenario
    if args.org_accounts is not None:
        if args.org_accounts < 1:
            parser.error("--org-accounts must be >= 1")
        sized = replace(SCENARIOS["org-many"], accounts=args.org_accounts)
        scenarios = [sized if scenario.name == "org-many" else scenario for scenario in scenarios]
    return Options(
        scenarios=scenarios,
        principals=args.principals,
        org_principals=args.org_principals,
        seed=args.seed,
        tools=args.only,
        variants=variants,
        capacity=everything if args.capacity is None else args.capacity,
        sequential_subset=args.sequential_subset,
        runs_dir=HERE / "runs",
        results_dir=args.results_dir,
        command=shlex.join(["python", "-m", "bench", *argv]),
    ), args.render_only


def main(argv: list[str] | None = None) -> int:
    options, render_only = parse(sys.argv[1:] if argv is None else argv)
    if render_only:
        rerender(options.results_dir)
        print(f"bench: rewrote the tables of {options.results_dir / 'results.md'}")
        return 0
    for run in run_all(options):
        print(f"bench: {run.key} measured")
    print(f"bench: wrote {options.results_dir / 'results.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
