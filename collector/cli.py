"""Command line: argv and environment to settings, logging, one command, errors to exit codes."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from collector import __version__
from collector.config.loading import check_mode, env_name, load_settings, options
from collector.errors import (
    EXIT_OK,
    EXIT_PARTIAL,
    EXIT_SIGNAL_BASE,
    EXIT_USAGE,
    ConfigError,
    first_collector_error,
)
from collector.org.merge import add_manifest_parser, run_manifest
from collector.report import add_report_parser, run_report

# The sweep's modules (aiobotocore, aiohttp, structlog: most of a second of CPU) are imported
# by the commands that sweep: --help, usage errors, reports and local merges start without them.
if TYPE_CHECKING:
    import anyio

    from collector.config.settings import Settings
    from collector.org.shard import Shard
    from collector.sweep.pipeline import SweepResult
    from collector.sweep.shutdown import Shutdown

# CPython's default thresholds (700, 10, 10) have every tenth young collection scan the middle
# generation and every hundredth rescan the whole long-lived heap (botocore's parsed models,
# clients, every task): 16% of an organisation sweep's CPU and pauses of 0.3-1 s that starve the
# event loop (measured; bench/results.md). A sweep's garbage dies young: collect it in bigger,
# rarer batches.
GC_THRESHOLDS = (20_000, 20, 20)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, not a usage dump."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _add_sweep_options(parser: argparse.ArgumentParser) -> None:
    """One option per settings key that has a flag in the schema, with the key's own help."""
    parser.add_argument("--config", help="YAML settings file (default: $COLLECTOR_CONFIG)")
    org = parser.add_argument_group("organisation sweeps (one file per account, then a manifest)")
    for option in options():
        flag = option.flag
        arguments: dict[str, Any] = {
            "dest": option.key,
            "help": f"{option.help} (${env_name(option.key)})",
        }
        if flag.switch is not None:
            arguments |= {"action": "store_const", "const": flag.switch}
        else:
            choices = "{" + ",".join(option.choices) + "}" if option.choices else None
            arguments["metavar"] = flag.metavar or choices or option.key.split(".")[-1].upper()
            if flag.repeat:
                arguments["action"] = "append"
        (org if flag.org else parser).add_argument(flag.name, **arguments)


def build_parser(*, emulator_options: bool = True) -> argparse.ArgumentParser:
    """The CLI; `emulator_options=False` skips importing moto when `emulate` is not run."""
    parser = _Parser(
        prog="collector",
        description="Bulk export of AWS IAM service-last-accessed (Access Advisor) data to JSONL.",
    )
    parser.add_argument("-V", "--version", action="version", version=f"collector {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sweep = commands.add_parser("sweep", help="report on every principal of the account")
    _add_sweep_options(sweep)
    check = commands.add_parser(
        "check",
        help="prove, one harmless call each, that a sweep with these options has every "
        "permission, role and bucket it needs (exit 0: all pass; 3: something is missing)",
    )
    _add_sweep_options(check)
    check.add_argument(
        "--sample",
        type=_count,
        metavar="N",
        help="with --org, --ou or --accounts: member accounts to assume the role in and check "
        "(default 3)",
    )
    check.add_argument("--format", choices=("table", "json"), default="table")
    demo = commands.add_parser(
        "demo", help="sweep a seeded account on the embedded emulator into ./out/"
    )
    demo.add_argument("--principals", type=int, default=300)
    demo.add_argument("--seed", type=int, default=1)
    demo.add_argument("--output-dir", default="out")
    add_manifest_parser(commands)
    add_report_parser(commands)
    emulate = commands.add_parser("emulate", help="serve the Access Advisor emulator on 127.0.0.1")
    if emulator_options:
        try:
            from collector.emulator.command import add_arguments
        except ImportError:
            pass  # the emulator extra is not installed; `emulate` says so when run
        else:
            add_arguments(emulate)
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number of 0 or more, got {text!r}")
    return value


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    """CLI flags as dotted settings keys; None means the flag was not given."""
    values: dict[str, object] = {}
    for option in options():
        value = getattr(args, option.key)
        values[option.key] = ",".join(value) if isinstance(value, list) else value
    # `--accounts FILE` names a file of ids as well as `--accounts-file FILE` does.
    accounts = values["org.accounts"]
    if isinstance(accounts, str) and _is_file(accounts):
        values["org.accounts"], values["org.accounts_file"] = None, accounts
    return values


def _is_file(value: str | None) -> bool:
    if value is None:
        return False
    ids = value.replace(",", "").strip()
    return not (ids.isascii() and ids.isdigit()) and Path(value).is_file()


def one_line(text: str) -> str:
    """A message on one line: a server's newline must not fake a second `collector:` line."""
    return " ".join(text.split())


async def _watch_signals(shutdown: Shutdown, received: list[int], abort: anyio.CancelScope) -> None:
    """First SIGINT/SIGTERM: stop gracefully. A second one: stop now, skipping the grace."""
    import anyio
    import structlog

    log = structlog.get_logger()
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            received.append(signum)
            log.warning("collector.sweep.signal", signal=signal.Signals(signum).name)
            # A second signal, or one during start-up (a hanging STS call, say): stop now.
            if shutdown.requested or not shutdown.request():
                abort.cancel()


async def _sweep(
    settings: Settings, credentials: Mapping[str, str] | None = None
) -> tuple[int, SweepResult | None]:
    """Run one sweep with signal handling and progress; return the exit code and result."""
    import anyio
    import structlog

    from collector.models import CallStats, Counters
    from collector.progress import show_progress, sweep_snapshot
    from collector.sweep.account import sweep_account
    from collector.sweep.shutdown import Shutdown

    log = structlog.get_logger()
    shutdown = Shutdown(settings.shutdown_grace)
    received: list[int] = []
    counters, stats = Counters(), CallStats()
    progress = sys.stderr.isatty() if settings.progress is None else settings.progress
    started = time.monotonic()
    result: SweepResult | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, shutdown, received, tg.cancel_scope)
        if progress:
            tg.start_soon(show_progress, sweep_snapshot(counters, stats), sys.stderr)
        try:
            # One id for the output's name and its records alike.
            result = await sweep_account(
                settings,
                run_id=settings.run_id or uuid.uuid4().hex,
                shutdown=shutdown,
                counters=counters,
                stats=stats,
                credentials=credentials,
            )
        finally:
            tg.cancel_scope.cancel()
    if result is None:  # aborted by a second signal: the .part stays, without a run line
        log.warning("collector.sweep.aborted", signal=signal.Signals(received[-1]).name)
        return EXIT_SIGNAL_BASE + received[0], None
    log.info(
        "collector.sweep.finished",
        status=result.status,
        output=result.path,
        seconds=round(time.monotonic() - started, 1),
        records=result.run["records"],
        api_calls=sum(stats.calls.values()),
        throttled=sum(stats.throttled.values()),
    )
    if received:
        return EXIT_SIGNAL_BASE + received[0], result
    return (EXIT_PARTIAL if result.status == "partial" else EXIT_OK), result


async def _sweep_org(settings: Settings, shard: Shard | None, run_id: str) -> tuple[int, Any]:
    """An organisation's sweep with signal handling and one progress line for every account."""
    import anyio

    from collector.models import OrgProgress
    from collector.org.sweep import OrgResult, OrgSweep
    from collector.progress import org_snapshot, show_progress
    from collector.sweep.shutdown import Shutdown

    shutdown = Shutdown(settings.shutdown_grace)
    received: list[int] = []
    org_progress = OrgProgress()
    progress = sys.stderr.isatty() if settings.progress is None else settings.progress
    result: OrgResult | None = None
    async with anyio.create_task_group() as tg:
        tg.start_soon(_watch_signals, shutdown, received, tg.cancel_scope)
        if progress:
            tg.start_soon(show_progress, org_snapshot(org_progress), sys.stderr)
        try:
            sweep = OrgSweep(
                settings, run_id=run_id, shard=shard, shutdown=shutdown, progress=org_progress
            )
            result = await sweep.run()
        finally:
            tg.cancel_scope.cancel()
    if received:
        return EXIT_SIGNAL_BASE + received[0], result
    assert result is not None
    return (EXIT_OK if result.complete else EXIT_PARTIAL), result


DEFAULT_SAMPLE = 3


def _check(settings: Settings, sample: int | None, output_format: str) -> int:
    """`collector check`: bad input is one line and exit 2 before any call; then the rows."""
    import anyio

    from collector.check import check, render
    from collector.org.sweep import check_org_settings

    try:
        check_mode(settings)
        if settings.org.enabled:
            check_org_settings(settings)
        elif sample is not None:
            raise ConfigError(
                "--sample only applies to an organisation: add --org, --ou or --accounts"
            )
        count = DEFAULT_SAMPLE if sample is None else sample
        report = anyio.run(check, settings, count)
    except BaseException as error:  # the one place where errors become exit codes
        found = first_collector_error(error)
        if found is None:
            raise
        print(f"collector: error: {one_line(str(found))}", file=sys.stderr)
        return found.exit_code
    sys.stdout.write(render(report, output_format))
    return report.exit_code


def _run(settings: Settings, credentials: Mapping[str, str] | None = None) -> tuple[int, Any]:
    """anyio.run with every CollectorError turned into one line on stderr and an exit code."""
    import anyio

    from collector.org.shard import resolve_run_id, resolve_shard
    from collector.org.sweep import check_org_settings
    from collector.sweep.descriptors import raise_open_files_limit

    gc.set_threshold(*GC_THRESHOLDS)
    # What the imports built (org.sweep brings in every module a sweep runs) lives as long as
    # the process: never scan it again.
    gc.freeze()
    # Containers often start with 1,024 descriptors and far more allowed: take them (an org
    # run also sizes its accounts in flight from the result).
    raise_open_files_limit()
    try:
        if settings.org.enabled:
            check_org_settings(settings)
            shard = resolve_shard(settings.shard, os.environ)
            run_id = resolve_run_id(settings.run_id, os.environ, datetime.now(UTC))
            return anyio.run(_sweep_org, settings, shard, run_id)
        check_mode(settings)
        return anyio.run(_sweep, settings, credentials)
    except BaseException as error:  # the one place where errors become exit codes
        found = first_collector_error(error)
        if found is None:
            raise
        print(f"collector: error: {one_line(str(found))}", file=sys.stderr)
        return found.exit_code, None


def _demo(args: argparse.Namespace) -> int:
    try:
        from collector.emulator import EmulatorOptions, Faults, running_emulator
    except ImportError:
        return _emulator_missing()
    from collector.config.settings import Rates, Settings
    from collector.logs import configure_logging

    configure_logging("warning")
    output_dir = Path(args.output_dir)
    options = EmulatorOptions(
        principals=args.principals, seed=args.seed, faults=Faults(latency=0.5, short_page_max=40)
    )
    print(f"collector demo: seeding an emulated account with {args.principals} principals ...")
    with running_emulator(options) as emulator:
        settings = replace(
            Settings(),
            endpoint_url=emulator.endpoint,
            output=str(output_dir / "access-advisor-{account_id}-{date}.jsonl"),
            rates=Rates(generate=100, get=200, get_with_entities=200, list=50),
            progress=sys.stderr.isatty(),
        )
        started = time.monotonic()
        code, result = _run(
            settings, {"aws_access_key_id": "demo", "aws_secret_access_key": "demo-secret"}
        )
    if result is None:
        return code
    records = result.run["records"]
    print(
        f"collector demo: {result.status} in {time.monotonic() - started:.1f} s: "
        f"{records['principal']} principals, {records['service']} service rows, "
        f"{records['entity']} entity rows, {records['error']} errors, "
        f"{sum(result.run['api_calls'].values())} API calls"
    )
    print(f"collector demo: wrote {result.path}")
    print(f"  try: jq -c 'select(.record==\"principal\")' {result.path} | head")
    return code


def _emulator_missing() -> int:
    print(
        "collector: error: the emulator needs its extra: "
        "pip install 'access-advisor-collector[emulator]'",
        file=sys.stderr,
    )
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    # moto takes a noticeable part of a second to import: only `emulate` needs it.
    args = build_parser(emulator_options="emulate" in words).parse_args(words)
    # A full disk or RLIMIT_FSIZE must be a write error we report, not a silent SIGXFSZ kill.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    if args.command == "emulate":
        try:
            from collector.emulator.command import run
        except ImportError:
            return _emulator_missing()
        code: int = run(args)
        return code
    if args.command == "demo":
        return _demo(args)
    if args.command == "manifest":
        return run_manifest(args)
    if args.command == "report":
        return run_report(args)
    try:
        settings = load_settings(args.config, os.environ, _overrides(args))
    except ConfigError as error:
        print(f"collector: error: {one_line(str(error))}", file=sys.stderr)
        return EXIT_USAGE
    from collector.logs import configure_logging

    configure_logging(settings.log_level)
    if args.command == "check":
        return _check(settings, args.sample, args.format)
    code, _ = _run(settings)
    return code
