"""`python -m bench` (`make bench`): flags to options, one run, where the results went."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bench.limit import ENTITIES, GENERATE, GET, LISTS
from bench.report import rerender
from bench.suite import DEFAULT_RATES, TOOL_NAMES, Options, run

HERE = Path(__file__).resolve().parent


def _tools(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = sorted(set(names) - set(TOOL_NAMES))
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"expected a comma-separated subset of {', '.join(TOOL_NAMES)}, got {text!r}"
        )
    return names


def parse(argv: list[str]) -> Options:
    """The run the flags ask for."""
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Sweep one rate-limited emulated account with the collector and its "
        "peers; write bench/results.md and bench/calls.png.",
    )
    parser.add_argument("--principals", type=int, default=1000, help="account size (1000)")
    parser.add_argument("--seed", type=int, default=0, help="account seed (0)")
    parser.add_argument(
        "--only",
        type=_tools,
        default=list(TOOL_NAMES),
        metavar="TOOLS",
        help=f"comma-separated tools to run (default all: {','.join(TOOL_NAMES)})",
    )
    parser.add_argument("--rate-generate", type=float, default=DEFAULT_RATES[GENERATE])
    parser.add_argument("--rate-get", type=float, default=DEFAULT_RATES[GET])
    parser.add_argument("--rate-get-with-entities", type=float, default=DEFAULT_RATES[ENTITIES])
    parser.add_argument(
        "--rate-list", type=float, default=DEFAULT_RATES["ListUsers"], help="each List* (10)"
    )
    parser.add_argument("--latency-median", type=float, default=2.0, help="seconds (2)")
    parser.add_argument("--latency-sigma", type=float, default=0.5, help="lognormal sigma (0.5)")
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
        help="only rewrite results.md from results.json (after editing bench/report.py)",
    )
    args = parser.parse_args(argv)
    everything = set(args.only) == set(TOOL_NAMES)
    variants = args.variant or []
    if "collector" not in args.only:
        variants = []
    for variant in variants:
        if not variant.startswith("COLLECTOR_") or "=" not in variant:
            parser.error(f"--variant expects COLLECTOR_KEY=VALUE, got {variant!r}")
    rates = {
        GENERATE: args.rate_generate,
        GET: args.rate_get,
        ENTITIES: args.rate_get_with_entities,
    } | dict.fromkeys(LISTS.values(), args.rate_list)
    if args.principals < 4 or min(rates.values()) <= 0:
        parser.error("--principals must be >= 4 and every rate > 0")
    return Options(
        render_only=args.render_only,
        principals=args.principals,
        seed=args.seed,
        rates=rates,
        latency_median=args.latency_median,
        latency_sigma=args.latency_sigma,
        tools=args.only,
        variants=variants,
        capacity=everything if args.capacity is None else args.capacity,
        sequential_subset=args.sequential_subset,
        runs_dir=HERE / "runs",
        results_dir=args.results_dir,
        command=shlex.join([".venv/bin/python", "-m", "bench", *argv]),
    )


def main(argv: list[str] | None = None) -> int:
    options = parse(sys.argv[1:] if argv is None else argv)
    if options.render_only:
        rerender(options.results_dir)
        print(f"bench: rewrote {options.results_dir / 'results.md'} from results.json")
        return 0
    data = run(options)
    print(f"bench: wrote {options.results_dir / 'results.md'} ({data['key']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
