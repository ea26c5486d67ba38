"""Report inputs: expand paths and globs, load schema-1 JSONL(.gz) into DuckDB, check them."""

# A table `NAME` holds every record, typed; `NAME_runs` one row per (account, run) with its
# status and start; `NAME_cur` the records of the newest run of each account, so a glob over
# many nights (`out/*/*.jsonl.gz`) reports each account once, from its latest sweep.
# policy_document lines (`sweep --policy-documents`) describe policies, not reports: they are
# checked like the rest and then moved to `NAME_documents`, out of the per-principal tables.
# A sweep's `NAME.part` is read to its last whole line: a killed sweep leaves its last line
# torn and a gzip stream without its end, which is no fault of the input; the run has no
# run line, so the file is named in a warning like any unfinished run.

from __future__ import annotations

import glob
import os
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from collector.report.model import ReportInputError
from collector.template import PART_SUFFIX

if TYPE_CHECKING:
    import duckdb

KINDS = ("service", "entity", "principal", "error", "run", "policy_document")

# Every key of schema 1, typed loosely: JSON where a key's type varies by record kind
# (`entities` is a count on principal lines and a mode on run lines) or is nested.
SOURCE_COLUMNS = {
    "record": "VARCHAR",
    "schema": "JSON",
    "run_id": "VARCHAR",
    "account_id": "VARCHAR",
    "principal_arn": "VARCHAR",
    "principal_type": "VARCHAR",
    "job_id": "VARCHAR",
    "service_namespace": "VARCHAR",
    "service_name": "VARCHAR",
    "last_authenticated": "VARCHAR",
    "last_authenticated_entity": "VARCHAR",
    "last_authenticated_region": "VARCHAR",
    "total_authenticated_entities": "JSON",
    "tracked_actions": "JSON",
    "entity_arn": "VARCHAR",
    "entity_name": "VARCHAR",
    "entity_type": "VARCHAR",
    "entity_id": "VARCHAR",
    "entity_path": "VARCHAR",
    "principal_name": "VARCHAR",
    "principal_id": "VARCHAR",
    "principal_path": "VARCHAR",
    "job_type": "VARCHAR",
    "job_created": "VARCHAR",
    "job_completed": "VARCHAR",
    "services": "JSON",
    "services_accessed": "JSON",
    "entities": "JSON",
    "stage": "VARCHAR",
    "code": "VARCHAR",
    "message": "VARCHAR",
    "started": "VARCHAR",
    "finished": "VARCHAR",
    "status": "VARCHAR",
    "records": "JSON",
    "api_calls": "JSON",
    "throttled_calls": "JSON",
    "granularity": "VARCHAR",
    "collector_version": "VARCHAR",
    "policy_arn": "VARCHAR",
    "owner_arn": "VARCHAR",
    "policy_name": "VARCHAR",
    "version_id": "VARCHAR",
    "document": "JSON",
    "attached_to": "JSON",
}

# What the reports read; parquet loads every column. Fewer columns load much faster
# (DuckDB skips parsing the rest): 1M rows in about half the time.
REPORT_COLUMNS = (
    "record",
    "schema",
    "run_id",
    "account_id",
    "principal_arn",
    "principal_type",
    "service_namespace",
    "service_name",
    "last_authenticated",
    "entity_arn",
    "job_created",
    "started",
    "status",
)
_TIMESTAMPS = ("last_authenticated", "job_created", "job_completed", "started", "finished")
_COUNTS = ("total_authenticated_entities", "services", "services_accessed")


@dataclass(frozen=True, slots=True)
class Run:
    """One sweep of one account as the inputs hold it."""

    account_id: str
    run_id: str
    files: str
    status: str  # the run line's status, or "no run line"
    started: datetime | None
    errors: int
    current: bool  # the newest run of its account: the one reports use

    @property
    def flagged(self) -> bool:
        return self.status != "complete"

    def describe(self) -> str:
        why = {
            "partial": f"is partial ({self.errors} error records)",
            "interrupted": "was interrupted (some principals are missing)",
            "no run line": "has no run line (the sweep did not finish; principals may be missing)",
        }.get(self.status, f"has status {self.status!r}")
        return f"account {self.account_id}: run {self.run_id} in {self.files} {why}"


def _is_glob(pattern: str) -> bool:
    return any(char in pattern for char in "*?[")


def expand(patterns: list[str]) -> list[str]:
    """Local files named by paths and globs, each checked readable; duplicates dropped."""
    files: list[str] = []
    for pattern in patterns:
        if pattern.startswith("s3://"):  # the one place an S3 listing will go
            raise ReportInputError(f"{pattern}: s3:// inputs are not supported yet; copy locally")
        if _is_glob(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            if not matches:
                raise ReportInputError(f"{pattern}: no file matches this pattern")
        else:
            matches = [pattern]
        for name in matches:
            path = Path(name)
            if path.is_dir():
                raise ReportInputError(f"{name}: is a directory (give files or a glob)")
            try:
                with path.open("rb") as handle:
                    handle.read(1)
            except OSError as error:
                raise ReportInputError(f"{name}: cannot read: {error.strerror}") from None
            files.append(os.path.normpath(name))
    return list(dict.fromkeys(files))


def _plain_chunks(raw: IO[bytes], gzipped: bool) -> Iterator[bytes]:
    """The file's bytes, gunzipped as far as the stream goes (no error at a missing end)."""
    if not gzipped:
        yield from iter(lambda: raw.read(1 << 20), b"")
        return
    inflate = zlib.decompressobj(31)
    while chunk := raw.read(1 << 20):
        while chunk:
            yield inflate.decompress(chunk)
            if not inflate.eof:
                break
            chunk = inflate.unused_data  # a gzip file may hold several members
            inflate = zlib.decompressobj(31)


def _whole_lines(name: str, into: Path) -> str:
    """A `.part`'s whole lines as a plain file at `into` (private: in our temp folder)."""
    gzipped = name.removesuffix(PART_SUFFIX).endswith(".gz")
    written = kept = 0
    try:
        with open(name, "rb") as raw, into.open("wb") as out:
            for chunk in _plain_chunks(raw, gzipped):
                out.write(chunk)
                end = chunk.rfind(b"\n")
                if end >= 0:
                    kept = written + end + 1
                written += len(chunk)
            out.truncate(kept)  # a torn last line goes
    except (OSError, zlib.error) as error:
        raise ReportInputError(f"{name}: cannot read: {error}") from None
    return str(into)


def _typed_select(source: str, names: tuple[str, ...]) -> str:
    """Cast the loose source columns, and name the first problem of each bad line."""
    casts = []
    for name in names:
        if name in _TIMESTAMPS:
            casts.append(f"TRY_CAST({name} AS TIMESTAMP) AS {name}")
        elif name in _COUNTS:
            casts.append(f"TRY_CAST({name} AS BIGINT) AS {name}")
        elif name == "schema":
            continue
        elif name == "entities":
            casts.append("TRY_CAST(entities AS BIGINT) AS entity_count")
            casts.append("entities ->> '$' AS entities_mode")
        else:
            casts.append(name)
    bad_times = " OR ".join(
        f"({name} IS NOT NULL AND TRY_CAST({name} AS TIMESTAMP) IS NULL)"
        for name in _TIMESTAMPS
        if name in names
    )
    kinds = ", ".join(f"'{kind}'" for kind in KINDS)
    problem = f"""CASE
        WHEN schema IS NULL THEN 'a line without \"schema\": not a collector export'
        WHEN schema::VARCHAR <> '1' THEN 'schema ' || schema::VARCHAR || ', not schema 1'
        WHEN record IS NULL OR record NOT IN ({kinds})
            THEN 'unknown record kind ' || coalesce(record, 'null')
        WHEN account_id IS NULL OR NOT regexp_full_match(account_id, '[0-9]{{12}}')
            THEN 'account_id ' || coalesce(account_id, 'null') || ' is not 12 digits'
        WHEN run_id IS NULL THEN 'a line without run_id'
        WHEN record NOT IN ('run', 'policy_document')
             AND (principal_arn IS NULL OR principal_type IS NULL)
            THEN 'a ' || record || ' line without principal_arn or principal_type'
        WHEN record IN ('service', 'entity') AND service_namespace IS NULL
            THEN 'a ' || record || ' line without service_namespace'
        WHEN {bad_times} THEN 'a timestamp that is not ISO-8601'
        END AS problem"""
    return f"SELECT filename AS file, {', '.join(casts)}, {problem} FROM {source}"


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def load(
    con: duckdb.DuckDBPyConnection,
    patterns: list[str],
    name: str,
    *,
    every_column: bool = False,
    extra: tuple[str, ...] = (),
) -> list[Run]:
    """Load the inputs into table NAME (+ NAME_runs, NAME_cur, NAME_documents); return their
    runs. `extra`: columns a report reads besides REPORT_COLUMNS."""
    import duckdb

    files = expand(patterns)
    if not files:
        raise ReportInputError("no input files given")
    names = tuple(SOURCE_COLUMNS) if every_column else (*REPORT_COLUMNS, *extra)
    columns = "{" + ", ".join(f"'{key}': '{SOURCE_COLUMNS[key]}'" for key in names) + "}"
    with tempfile.TemporaryDirectory(prefix="collector-report-") as tmp:
        # What DuckDB reads -> the file the user gave.
        given = {
            _whole_lines(f, Path(tmp) / f"{i}.jsonl") if f.endswith(PART_SUFFIX) else f: f
            for i, f in enumerate(files)
        }
        file_list = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in given) + "]"
        source = (
            f"read_json({file_list}, format = 'newline_delimited', columns = {columns}, "
            "filename = true, maximum_object_size = 67108864)"
        )
        try:
            con.execute(f"CREATE TABLE {name} AS {_typed_select(source, names)}")
        except duckdb.Error as error:
            message = _first_line(error)
            for read, original in given.items():
                message = message.replace(read, original)
            raise ReportInputError(f"cannot read the input: {message}") from None
    for read, original in given.items():
        if read != original:
            con.execute(
                f"UPDATE {name} SET file = $original WHERE file = $read",
                {"original": original, "read": read},
            )
    bad = con.execute(
        f"SELECT file, problem FROM {name} WHERE problem IS NOT NULL LIMIT 1"
    ).fetchone()
    if bad is not None:
        raise ReportInputError(f"{bad[0]}: not a collector schema-1 export: {bad[1]}")
    empty = con.execute(
        f"SELECT f FROM unnest($files) t(f) WHERE f NOT IN (SELECT DISTINCT file FROM {name})",
        {"files": files},
    ).fetchone()
    if empty is not None:
        raise ReportInputError(f"{empty[0]}: holds no records")
    con.execute(
        f"""CREATE TABLE {name}_documents AS SELECT * FROM {name} WHERE record = 'policy_document';
        DELETE FROM {name} WHERE record = 'policy_document'"""
    )
    return _runs(con, name)


def _runs(con: duckdb.DuckDBPyConnection, name: str) -> list[Run]:
    # One sweep of one account is one file; in two (a .part and its finished file, a copy),
    # every row would count twice.
    twice = con.execute(
        f"""SELECT account_id, run_id, string_agg(DISTINCT file, ' and ') FROM {name}
            GROUP BY ALL HAVING count(DISTINCT file) > 1 LIMIT 1"""
    ).fetchone()
    if twice is not None:
        raise ReportInputError(
            f"run {twice[1]} of account {twice[0]} is given more than once ({twice[2]}); "
            "give each sweep once"
        )
    con.execute(
        f"""CREATE TABLE {name}_runs AS
        SELECT account_id, run_id,
               string_agg(DISTINCT file, ', ' ORDER BY file) AS files,
               coalesce(max(status) FILTER (WHERE record = 'run'), 'no run line') AS status,
               coalesce(min(started) FILTER (WHERE record = 'run'), min(job_created)) AS started,
               count(*) FILTER (WHERE record = 'error') AS errors
        FROM {name} GROUP BY account_id, run_id"""
    )
    con.execute(
        f"""ALTER TABLE {name}_runs ADD COLUMN current BOOLEAN DEFAULT false;
        UPDATE {name}_runs SET current = true WHERE (account_id, run_id) IN (
            SELECT (account_id, run_id) FROM {name}_runs
            QUALIFY row_number() OVER (
                PARTITION BY account_id ORDER BY started DESC NULLS LAST, run_id DESC) = 1);
        CREATE VIEW {name}_cur AS
        SELECT r.*, u.started::DATE AS run_date FROM {name} r
        JOIN {name}_runs u USING (account_id, run_id) WHERE u.current"""
    )
    rows: list[tuple[Any, ...]] = con.execute(
        f"""SELECT account_id, run_id, files, status, started, errors, current
            FROM {name}_runs ORDER BY account_id, started DESC NULLS LAST"""
    ).fetchall()
    return [Run(*row) for row in rows]
