"""A job that becomes unreadable in the middle of its pages (as when the credentials that made
it are refreshed) is generated again and read to its end: every row once, none lost."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from collector.emulator import EmulatorOptions, Faults, running_emulator
from collector.emulator.faults import loses_first_job
from collector.models import EntitiesMode
from tests.support.sweeping import assert_matches_truth, fast_settings, read_lines, sweep

GENERATE = "GenerateServiceLastAccessedDetails"
SEED = 11


def expected_losses(
    truth: list[dict[str, Any]], faults: Faults, entities: EntitiesMode
) -> tuple[set[str], set[str]]:
    """(principals whose first job is lost between service pages, between entity pages).

    With one-item pages a job's reads are counted exactly: the COMPLETED poll carries the first
    service, each later service is one read, then each entity of a namespace read for entities
    one (a namespace without any, one empty page). A lost job answers `lost_job_after_reads`.
    """
    services: dict[str, list[dict[str, Any]]] = defaultdict(list)
    entity_rows: Counter[tuple[str, str]] = Counter()
    for record in truth:
        if record["record"] == "service":
            services[record["principal_arn"]].append(record)
        elif record["record"] == "entity":
            entity_rows[(record["principal_arn"], record["service_namespace"])] += 1
    between_services, between_entities = set(), set()
    reads = faults.lost_job_after_reads
    for arn, rows in services.items():
        if not loses_first_job(faults, SEED, arn):
            continue
        wanted = [
            row["service_namespace"]
            for row in rows
            if entities == "all"
            or (
                entities == "accessed"
                and row["principal_type"] in ("group", "policy")
                and row["last_authenticated"] is not None
            )
        ]
        entity_reads = sum(max(1, entity_rows[(arn, namespace)]) for namespace in wanted)
        if len(rows) > reads:
            between_services.add(arn)
        elif len(rows) + entity_reads > reads:
            between_entities.add(arn)
    return between_services, between_entities


@pytest.mark.parametrize("entities", ["accessed", "all"])
@pytest.mark.parametrize("after_reads", [1, 5])
async def test_a_job_lost_mid_fetch_is_generated_again_and_read_to_its_end(
    tmp_path: Path, entities: EntitiesMode, after_reads: int
) -> None:
    """Half the principals' first jobs answer `after_reads` reads (the COMPLETED poll, then
    one-item service or entity pages), then NoSuchEntity. The sweep writes exactly the ground
    truth; each such principal that reads past them gets one new job, however many entity
    workers saw the loss; its rows keep the job they were read from, its `principal` line
    names the new one."""
    faults = Faults(lost_job_share=0.5, lost_job_after_reads=after_reads, short_page_max=1)
    with running_emulator(EmulatorOptions(principals=120, seed=SEED, faults=faults)) as emulator:
        settings = fast_settings(emulator.endpoint, tmp_path / "out.jsonl", entities=entities)
        result = await sweep(settings)
        truth = emulator.ground_truth(entities=entities)
    assert result.path is not None
    lines = read_lines(result.path)
    errors = Counter((r["stage"], r["code"]) for r in lines if r["record"] == "error")
    assert result.status == "complete", (errors, lines[-1]["records"])
    assert_matches_truth(lines, truth)

    first_job: dict[str, str] = {}  # principal -> the job its first line was read from
    service_jobs: dict[str, set[str]] = defaultdict(set)
    renewed: set[str] = set()  # principals whose principal line names another job
    for line in lines[:-1]:
        arn, job_id = line["principal_arn"], line["job_id"]
        first_job.setdefault(arn, job_id)
        if line["record"] == "service":
            service_jobs[arn].add(job_id)
        if line["record"] == "principal" and job_id != first_job[arn]:
            renewed.add(arn)
    in_services = {arn for arn in renewed if len(service_jobs[arn]) == 2}
    between_services, between_entities = expected_losses(truth, faults, entities)
    assert between_services and between_entities  # the scenario reaches both stages
    assert all(len(ids) <= 2 for ids in service_jobs.values())
    assert (in_services, renewed - in_services) == (between_services, between_entities)
    # One new job per renewed principal, however many entity workers saw it lost.
    assert lines[-1]["api_calls"][GENERATE] == lines[-1]["records"]["principal"] + len(renewed)
