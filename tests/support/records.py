"""Schema-1 records and sink runs for the output tests: lines, complete principals, a fed sink."""

from __future__ import annotations

import contextlib
import gzip
import json
from pathlib import Path
from typing import Any

import anyio

from collector.models import RECORD_FIELDS, Record
from collector.output.files import FileWriter
from collector.output.resume import ResumeState, kept_lines, scan
from collector.output.sink import Sink
from collector.template import OutputTemplate

ACCOUNT = "123456789012"


RUN = "run-1"


def arn(name: str) -> str:
    return f"arn:aws:iam::{ACCOUNT}:user/{name}"


def line(kind: str, name: str, run_id: str = RUN, **extra: Any) -> Record:
    """A schema-1 record of `kind` (every key of its kind; unset ones null)."""
    return dict.fromkeys(RECORD_FIELDS.get(kind, ())) | {
        "record": kind, "schema": 1, "run_id": run_id, "account_id": ACCOUNT,
        "principal_arn": arn(name),
    } | extra  # fmt: skip


def principal_lines(name: str, services: int = 2, run_id: str = RUN) -> list[Record]:
    """A complete principal: its service rows, an entity row, then its `principal` line."""
    rows = [line("service", name, run_id, service_namespace=f"s{i}") for i in range(services)]
    marker = line("principal", name, run_id, services=services, services_accessed=0, entities=1)
    return [*rows, line("entity", name, run_id), marker]


def run_line(status: str = "complete", started: str = "2024-05-01T00:00:00Z") -> Record:
    return {"record": "run", "schema": 1, "run_id": RUN, "account_id": ACCOUNT,
            "status": status, "started": started}  # fmt: skip


def file_sink(target: Path, resume_from: Path | None = None) -> tuple[Sink, ResumeState]:
    """A sink over a locked, opened file writer, carrying over `resume_from` as a sweep does."""
    writer = FileWriter(str(target), run_id=RUN, resume_from=resume_from)
    if resume_from is None:
        writer.open()
        return Sink(writer), ResumeState()
    state = scan(resume_from, account_id=ACCOUNT)
    writer.open(raw for _, raw in kept_lines(resume_from, state, account_id=ACCOUNT))
    return Sink(writer, state.kept), state


def finish(sink: Sink, record: Record, *, publish: bool) -> str | None:
    return anyio.run(lambda: sink.finish(record, publish=publish))


def render(template: str, **values: Any) -> str:
    return OutputTemplate.parse(template).render(**values)


def find_resumable(template: str, *, account_id: str) -> Path | None:
    return OutputTemplate.parse(template).resumable(account_id=account_id)


def read_lines(path: Path) -> list[Record]:
    """Every line; of a gzip stream still being written, the lines flushed so far."""
    opener = gzip.open if ".gz" in path.name else open
    records: list[Record] = []
    # EOFError: no gzip trailer yet, the sink has not finished.
    with opener(path, "rt", encoding="utf-8") as handle, contextlib.suppress(EOFError):
        records.extend(json.loads(text) for text in handle)
    return records


def write_raw(path: Path, records: list[Record], tail: bytes = b"") -> None:
    data = b"".join(json.dumps(r).encode() + b"\n" for r in records) + tail
    if path.name.removesuffix(".part").endswith(".gz"):
        data = gzip.compress(data)
    path.write_bytes(data)


def sweep(sink: Sink, records: list[Record], producers: int = 1) -> None:
    """Feed records to `sink.run` from several concurrent producers, as the pipeline does."""

    async def main() -> None:
        send, receive = anyio.create_memory_object_stream[Record](8)
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(sink.run, receive)
                async with send:
                    for index in range(producers):
                        tg.start_soon(produce, send.clone(), records[index::producers])

    async def produce(send: Any, share: list[Record]) -> None:
        async with send:
            for record in share:
                await send.send(record)

    anyio.run(main)
