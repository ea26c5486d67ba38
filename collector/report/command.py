"""The `report` command: argparse definitions (no DuckDB import) and the run entry point."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import IO, Any

from collector.errors import EXIT_OK, EXIT_OUTPUT, EXIT_USAGE

_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".md": "markdown",
    ".html": "html",
    ".htm": "html",
}
FORMATS = ("table", "csv", "json", "markdown", "html")


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of days: {text!r}") from None
    if days < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return days


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="json is JSON Lines, html one self-contained page; default: from --output's "
        "suffix (.csv .json .md .html), else table on a terminal and csv otherwise",
    )
    parser.add_argument("--output", metavar="FILE", help="write here instead of stdout")


def _window_options(parser: argparse.ArgumentParser, *, as_of: bool = True) -> None:
    parser.add_argument(
        "--days", type=_days, default=90, help="unused means not used in N days (default 90)"
    )
    if as_of:
        parser.add_argument(
            "--as-of",
            type=_date,
            metavar="DATE",
            help="judge ages as of this UTC date, YYYY-MM-DD (default: today, UTC)",
        )


def add_report_parser(commands: Any) -> None:
    """Add `report unused|summary|diff|org-unused|rightsize|parquet` to the CLI's subcommands."""
    report = commands.add_parser(
        "report", help="answers from exported JSONL files (needs the report extra)"
    )
    kinds = report.add_subparsers(dest="report_command", required=True, metavar="REPORT")
    paths_help = "schema-1 files (.jsonl, .jsonl.gz) or globs; quote globs"
    unused = kinds.add_parser("unused", help="granted services not used in N days, or ever")
    unused.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    _window_options(unused)
    _output_options(unused)
    summary = kinds.add_parser("summary", help="per account and principal type, with run status")
    summary.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    _window_options(summary)
    _output_options(summary)
    diff = kinds.add_parser("diff", help="what changed between two sweeps")
    diff.add_argument("old", metavar="OLD", help="the earlier sweep: a file or a quoted glob")
    diff.add_argument("new", metavar="NEW", help="the later sweep: a file or a quoted glob")
    _window_options(diff, as_of=False)
    _output_options(diff)
    org_unused = kinds.add_parser(
        "org-unused", help="per OU: services SCPs allow and nobody there used in N days"
    )
    org_unused.add_argument("paths", nargs="+", metavar="PATH", help="org-access-*.jsonl files")
    _window_options(org_unused)
    _output_options(org_unused)
    rightsize = kinds.add_parser(
        "rightsize",
        help="per policy: the services not used in N days, and a document without them "
        "(needs exports of sweep --policy-documents)",
    )
    rightsize.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    _window_options(rightsize)
    _output_options(rightsize)
    parquet = kinds.add_parser("parquet", help="write Parquet partitioned by account and date")
    parquet.add_argument("paths", nargs="+", metavar="PATH", help=paths_help)
    parquet.add_argument("--to", required=True, metavar="DIR", help="the dataset's root folder")
    _output_options(parquet)


def _format(args: argparse.Namespace) -> str:
    if args.format:
        return str(args.format)
    if args.output:
        return _SUFFIX_FORMATS.get(Path(args.output).suffix.lower(), "table")
    return "table" if sys.stdout.isatty() else "csv"


def _build(args: argparse.Namespace) -> Any:
    """Load the inputs and compute the report (imports DuckDB)."""
    import duckdb

    from collector.report.inputs import load

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if args.report_command == "diff":
        from collector.report.diff import compare, diff_report

        notes = _warnings(load(con, [args.old], "old"), "OLD") + _warnings(
            load(con, [args.new], "new"), "NEW"
        )
        one_sided = compare(con, args.days)  # csv and json carry no notes: told on stderr
        for note in one_sided:
            print(f"collector: warning: {note}", file=sys.stderr)
        return diff_report(con, args.days, notes + one_sided)
    if args.report_command == "org-unused":
        from collector.report.orgunused import load_org_access, org_unused_report

        notes = load_org_access(con, args.paths)
        for note in notes:
            print(f"collector: warning: {note}", file=sys.stderr)
        return org_unused_report(con, args.as_of or datetime.now(UTC).date(), args.days, notes)
    if args.report_command == "rightsize":
        from collector.report.rightsize import rightsize_report

        as_of = args.as_of or datetime.now(UTC).date()
        return rightsize_report(con, args.paths, as_of, args.days, _warnings)
    runs = load(con, args.paths, "inputs", every_column=args.report_command == "parquet")
    notes = _warnings(runs, "")
    if args.report_command == "parquet":
        from collector.report.parquet import export

        return export(con, "inputs", runs, Path(args.to))
    as_of = args.as_of or datetime.now(UTC).date()
    if args.report_command == "summary":
        from collector.report.summary import summary_report

        return summary_report(con, "inputs", runs, as_of, args.days, notes)
    from collector.report.unused import unused_report

    return unused_report(con, "inputs_cur", as_of, args.days, notes)


def _warnings(runs: Any, side: str) -> list[str]:
    """Runs that are not complete: told on stderr now, and carried as notes in the report."""
    prefix = f"{side}: " if side else ""
    notes = [prefix + run.describe() for run in runs if run.current and run.flagged]
    superseded = sum(1 for run in runs if not run.current)
    if superseded:
        notes.append(f"{prefix}{superseded} older run(s) ignored: each account's newest is used")
    for note in notes:
        print(f"collector: warning: {note}", file=sys.stderr)
    return notes


def _write(report: Any, fmt: str, out: IO[str], terminal: bool) -> None:
    from collector.report import render
    from collector.report.rightsize import Rightsize

    if isinstance(report, Rightsize):  # its json is one array, its markdown and html diffs
        from collector.report.rightsizeout import write

        write(report, fmt, out, terminal=terminal)
        return

    if fmt == "csv":
        render.write_csv(report, out)
    elif fmt == "json":
        render.write_json(report, out)
    elif fmt == "markdown":
        render.write_markdown(report, out)
    elif fmt == "html":
        from collector.report.htmlpage import write_html

        write_html(report, out)
    else:
        render.write_table(report, out, terminal=terminal)


def _write_file(report: Any, fmt: str, output: str) -> None:
    """A private temp file beside `output`, renamed over it once whole.

    The rename replaces a symlink planted at `output` instead of writing through it, the
    file is 0600 from creation (it maps who uses what, as the exports do), and a failure
    never leaves a half-written report under the name.
    """
    target = Path(output)
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            _write(report, fmt, handle, terminal=False)
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


@contextlib.contextmanager
def _private_files() -> Iterator[None]:
    """Files and folders the report creates (Parquet's, DuckDB's) are the owner's only."""
    previous = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(previous)


def run_report(args: argparse.Namespace) -> int:
    """Run one report; bad input is one line on stderr and exit 2, never a traceback."""
    if not args.output and sys.stdout is None:  # started with stdout closed (`>&-`)
        print(
            "collector: error: cannot write to stdout: it is closed; give --output a file path",
            file=sys.stderr,
        )
        return EXIT_OUTPUT
    with _private_files():
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        import duckdb  # noqa: F401
        import rich  # noqa: F401
    except ImportError:
        print(
            "collector: error: reports need their extra: "
            "pip install 'access-advisor-collector[report]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from collector.report.model import ReportInputError

    fmt = _format(args)
    try:
        report = _build(args)
    except ReportInputError as error:
        print(f"collector: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.output:
            _write_file(report, fmt, args.output)
        else:
            _write(report, fmt, sys.stdout, terminal=sys.stdout.isatty())
    except BrokenPipeError:  # `| head` stopped reading: not an error
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python flushes stdout at exit
        return EXIT_OK
    except OSError as error:
        print(f"collector: error: {args.output or 'stdout'}: {error.strerror}", file=sys.stderr)
        return EXIT_OUTPUT
    return EXIT_OK
