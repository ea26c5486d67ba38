"""`report parquet`: the export as Parquet, one dataset per record kind, Hive-partitioned."""

# Layout: `DIR/<kind>/account_id=<id>/date=<YYYY-MM-DD>/run-<run_id>.parquet`, where `date` is
# the UTC date the sweep started (its run line's `started`, the same date as the output
# template's `{date}`; for a file without a run line, its earliest `job_created`). One file per
# run and partition, named by run id: exporting the same sweep again replaces its files, and
# a new night adds new partitions. Partition columns live in the path only (declare them as
# `string` in Athena/Glue so account ids keep their leading zeros).
# DuckDB writes into a private folder inside DIR; each file is then renamed into place
# through folders opened without following symlinks, so a symlink planted in the tree is
# replaced (a file) or refused (a folder), never written through.

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from collector.report.inputs import Run
from collector.report.model import Report, ReportInputError, Table

if TYPE_CHECKING:
    import duckdb

_COMMON = "run_id, principal_arn, principal_type, job_id"
_TRACKED = (
    'from_json(tracked_actions, \'[{"action_name": "VARCHAR", '
    '"last_accessed_time": "TIMESTAMP", "last_accessed_entity": "VARCHAR", '
    '"last_accessed_region": "VARCHAR"}]\') AS tracked_actions'
)
COLUMNS = {
    "service": f"""{_COMMON}, service_namespace, service_name, last_authenticated,
        last_authenticated_entity, last_authenticated_region, total_authenticated_entities,
        {_TRACKED}""",
    "entity": f"""{_COMMON}, service_namespace, entity_arn, entity_name, entity_type,
        entity_id, entity_path, last_authenticated""",
    "principal": f"""{_COMMON}, principal_name, principal_id, principal_path, job_type,
        job_created, job_completed, services, services_accessed, entity_count AS entities""",
    "error": f"{_COMMON}, stage, code, message, service_namespace",
    "run": """run_id, started, finished, status, records::VARCHAR AS records,
        api_calls::VARCHAR AS api_calls, throttled_calls::VARCHAR AS throttled_calls,
        granularity, entities_mode AS entities, collector_version""",
}


def export(con: duckdb.DuckDBPyConnection, name: str, runs: list[Run], to: Path) -> Report:
    """Write every run of the inputs; return what was written, one row per file."""
    undated = [run for run in runs if run.started is None]
    if undated:
        raise ReportInputError(
            f"{undated[0].files}: run {undated[0].run_id} has no run line and no job "
            "timestamps, so it has no date to partition by"
        )
    try:
        to.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(prefix=".collector-parquet-", dir=to))
    except OSError as error:
        raise ReportInputError(f"{to}: cannot create: {error.strerror}") from None
    try:
        written = _write(con, name, runs, staged)
        _place(staged, to)
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    names = ("record", "account_id", "date", "run_id", "rows", "run_status")
    return Report(
        title=f"Parquet written under {to}",
        tables=[Table("parquet", "Files written", names, written)],
        context={"to": str(to)},
    )


def _write(
    con: duckdb.DuckDBPyConnection, name: str, runs: list[Run], staged: Path
) -> list[tuple[object, ...]]:
    """Every run's Parquet files into the staging folder; one row per file."""
    import duckdb

    written: list[tuple[object, ...]] = []
    for run in runs:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", run.run_id)
        for kind, columns in COLUMNS.items():
            query = f"""SELECT account_id, strftime($started, '%Y-%m-%d') AS date, {columns}
                        FROM {name}
                        WHERE record = '{kind}' AND account_id = $account AND run_id = $run"""
            params = {"started": run.started, "account": run.account_id, "run": run.run_id}
            count = con.execute(f"SELECT count(*) FROM ({query})", params).fetchone()
            if not count or not count[0]:
                continue
            target = str(staged / kind).replace("'", "''")
            try:
                con.execute(
                    f"""COPY ({query}) TO '{target}' (FORMAT parquet,
                        PARTITION_BY (account_id, date), OVERWRITE_OR_IGNORE,
                        FILENAME_PATTERN 'run-{safe}-{{i}}')""",
                    params,
                )
            except duckdb.Error as error:
                raise ReportInputError(f"{staged.parent}: cannot write Parquet: {error}") from None
            assert run.started is not None
            written.append(
                (kind, run.account_id, run.started.date(), run.run_id, count[0], run.status)
            )
    return written


def _place(staged: Path, to: Path) -> None:
    """Rename every staged file to the same place under `to`, never through a symlink."""
    for path in sorted(p for p in staged.rglob("*") if p.is_file()):
        *folders, file_name = path.relative_to(staged).parts
        where = to
        fd = os.open(to, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for folder in folders:
                where = where / folder
                with contextlib.suppress(FileExistsError):
                    os.mkdir(folder, 0o700, dir_fd=fd)
                inner = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = inner
            os.replace(path, file_name, dst_dir_fd=fd)  # a symlink there is replaced, not followed
        except OSError as error:
            raise ReportInputError(
                f"{where}: cannot write Parquet there: {error.strerror} "
                "(a symlink or a file where a folder belongs?)"
            ) from None
        finally:
            os.close(fd)
