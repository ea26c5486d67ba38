"""Each stage tested by owning both ends of its streams, over a scripted IAM client."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest

from collector.aws.idletokens import IdleTokens
from collector.aws.ratelimit import TokenBucket
from collector.config.settings import DiscoverySettings, PollSettings
from collector.errors import RetriesExhaustedError
from collector.models import CompletedJob, Counters, PendingJob, Principal, Record, error_record
from collector.sweep import discover, fetch, jobs
from collector.sweep.renewal import MAX_REGENERATIONS, Regenerate
from tests.support.fakes import CTX, FakeIam, client_error, fake_api, stage_env

if TYPE_CHECKING:
    from types_aiobotocore_iam.type_defs import (
        GetServiceLastAccessedDetailsResponseTypeDef as JobPage,
    )

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
GROUP = Principal(
    arn="arn:aws:iam::123456789012:group/devs", type="group", name="devs", id="AGPA1", path="/"
)
FAST_POLL = PollSettings(first_delay=0.01, backoff=1.0, max_delay=0.05, jitter=0.0)


def service(namespace: str, accessed: bool) -> dict[str, Any]:
    item: dict[str, Any] = {"ServiceNamespace": namespace, "ServiceName": namespace.upper()}
    if accessed:
        item |= {
            "LastAuthenticated": T0,
            "LastAuthenticatedEntity": "arn:x",
            "TotalAuthenticatedEntities": 1,
        }
    return item


def page(fields: dict[str, Any]) -> JobPage:
    """A first page with only the fields the fetch stage reads (the stubs type a whole answer)."""
    return cast("JobPage", fields)


def entity(name: str) -> dict[str, Any]:
    return {
        "EntityInfo": {"Arn": f"arn:aws:iam::123456789012:user/{name}", "Name": name,
                       "Type": "USER", "Id": f"AIDA{name}", "Path": "/"},
        "LastAuthenticated": T0,
    }  # fmt: skip


async def run_stage(stage: Any, inputs: list[Any], *args: Any) -> list[Any]:
    """Feed `inputs` into a stage's receive stream and collect everything it sends."""
    in_send, in_receive = anyio.create_memory_object_stream[Any](len(inputs) + 1)
    out_send, out_receive = anyio.create_memory_object_stream[Any](1000)
    async with in_send:
        for item in inputs:
            await in_send.send(item)
    with anyio.fail_after(10):
        await stage(*args, in_receive, out_send)
    async with out_receive:
        return [item async for item in out_receive]


async def no_regeneration(principal: Principal, spare: int) -> CompletedJob | Record:
    raise AssertionError(f"no job of {principal.arn} should be generated again")


async def run_fetch(
    api: Any,
    jobs_in: list[CompletedJob],
    counters: Counters,
    regenerate: Regenerate = no_regeneration,
    entity_workers: int = 1,
) -> tuple[list[Any], list[Any]]:
    """Both fetch stages in turn; returns (services-stage records, entities-stage records)."""
    in_send, in_receive = anyio.create_memory_object_stream[Any](len(jobs_in))
    work_send, work_receive = anyio.create_memory_object_stream[Any](100)
    rec_send, rec_receive = anyio.create_memory_object_stream[Any](1000)
    async with in_send:
        for job in jobs_in:
            await in_send.send(job)
    with anyio.fail_after(10):
        env = stage_env(api, counters=counters)
        await fetch.services(env, regenerate, in_receive, work_send, rec_send.clone())
        async with rec_receive:
            first = [
                rec_receive.receive_nowait()
                for _ in range(rec_receive.statistics().current_buffer_used)
            ]
            async with work_receive, rec_send, anyio.create_task_group() as workers:
                for _ in range(entity_workers):
                    workers.start_soon(
                        fetch.entities, env, regenerate, work_receive.clone(), rec_send.clone()
                    )
            return first, [r async for r in rec_receive]


async def test_fetch_follows_every_page_and_writes_the_principal_line_last() -> None:
    """Short, truncated service pages and entity pages all arrive; the marker line comes last."""
    job = CompletedJob(
        principal=GROUP, job_id="job-1", job_type="SERVICE_LEVEL", job_created=T0,
        job_completed=T0 + timedelta(seconds=2),
        first_page=page({"ServicesLastAccessed": [service("s3", True), service("ec2", False)],
                         "IsTruncated": True, "Marker": "m1"}),
    )  # fmt: skip
    iam = FakeIam({
        "get_service_last_accessed_details": [
            {"ServicesLastAccessed": [service("lambda", True)], "IsTruncated": False}],
        "get_service_last_accessed_details_with_entities": [
            {"EntityDetailsList": [entity("a")], "IsTruncated": True, "Marker": "e1"},
            {"EntityDetailsList": [entity("b")], "IsTruncated": False},
            {"EntityDetailsList": [entity("c")], "IsTruncated": False}],
    })  # fmt: skip
    counters = Counters()
    first, then = await run_fetch(fake_api(iam), [job], counters)
    assert [r["record"] for r in first] == ["service"] * 3
    assert [r["record"] for r in then] == ["entity"] * 3 + ["principal"]
    assert iam.calls["get_service_last_accessed_details"] == [
        {"JobId": "job-1", "MaxItems": 1000, "Marker": "m1"}
    ]
    entity_calls = iam.calls["get_service_last_accessed_details_with_entities"]
    assert [(c["ServiceNamespace"], c.get("Marker")) for c in entity_calls] == [
        ("s3", None), ("s3", "e1"), ("lambda", None)
    ]  # fmt: skip
    assert {(r["service_namespace"], r["entity_name"]) for r in then[:3]} == {
        ("s3", "a"), ("s3", "b"), ("lambda", "c")
    }  # fmt: skip
    marker = then[-1]
    assert (marker["services"], marker["services_accessed"], marker["entities"]) == (3, 2, 3)
    assert marker["job_completed"] == "2026-11-01T12:00:02Z"
    assert counters.principals_done == 1


async def test_fetch_closes_a_report_without_entity_work_at_once() -> None:
    """A role report needs no entity pages: its principal line follows its services directly."""
    role = Principal(
        arn="arn:aws:iam::123456789012:role/r", type="role", name="r", id="AROA1", path="/"
    )
    job = CompletedJob(
        principal=role, job_id="job-3", job_type="SERVICE_LEVEL", job_created=T0,
        job_completed=T0, first_page=page({"ServicesLastAccessed": [service("s3", True)]}),
    )  # fmt: skip
    iam = FakeIam({})
    first, then = await run_fetch(fake_api(iam), [job], Counters())
    assert [r["record"] for r in first] == ["service", "principal"] and then == []
    assert iam.calls == {}


async def test_fetch_turns_a_failing_entity_page_into_an_error_without_principal_line() -> None:
    """An entity page that keeps failing becomes an `entities` error naming the namespace."""
    job = CompletedJob(
        principal=GROUP, job_id="job-2", job_type="SERVICE_LEVEL", job_created=T0,
        job_completed=T0, first_page=page({"ServicesLastAccessed": [service("s3", True)]}),
    )  # fmt: skip
    iam = FakeIam(
        {
            "get_service_last_accessed_details_with_entities": [client_error("ServiceFailure", 500)]
            * 2
        }
    )
    counters = Counters()
    first, then = await run_fetch(fake_api(iam, max_attempts=2), [job], counters)
    assert [r["record"] for r in first + then] == ["service", "error"]
    assert (then[0]["stage"], then[0]["code"], then[0]["service_namespace"]) == (
        "entities", "ServiceFailure", "s3"
    )  # fmt: skip
    assert (counters.errors, counters.principals_done) == (1, 0)


def completed(principal: Principal, job_id: str, **first: Any) -> CompletedJob:
    """A COMPLETED job whose first page holds `first` (services, IsTruncated, Marker)."""
    return CompletedJob(
        principal=principal, job_id=job_id, job_type="SERVICE_LEVEL", job_created=T0,
        job_completed=T0 + timedelta(seconds=2), first_page=page(first),
    )  # fmt: skip


class LosingEntityPages:
    """Entity pages: job `lost` answers its first page (entity a, truncated), then NoSuchEntity;
    any other job answers `pages[namespace]` in one page. `all_lost` is set at the `workers`-th
    loss: every worker has seen it."""

    def __init__(self, lost: str, pages: dict[str, list[dict[str, Any]]], workers: int) -> None:
        self.lost, self.pages, self.workers = lost, pages, workers
        self.losses = 0
        self.all_lost = anyio.Event()

    def __call__(self, params: dict[str, Any]) -> dict[str, Any]:
        if params["JobId"] != self.lost:
            rows = self.pages[params["ServiceNamespace"]]
            return {"EntityDetailsList": rows, "IsTruncated": False}
        if "Marker" not in params:
            return {"EntityDetailsList": [entity("a")], "IsTruncated": True, "Marker": "e1"}
        self.losses += 1
        if self.losses == self.workers:
            self.all_lost.set()
        raise client_error("NoSuchEntity", 404, f"No report job found with the ID {self.lost}.")


async def test_a_job_lost_between_service_pages_is_generated_again_once() -> None:
    """NoSuchEntity on service page 2: one new job, read from its first page; services already
    written are skipped; each row names the job it was read from, the principal line the new one."""
    role = Principal(
        arn="arn:aws:iam::123456789012:role/r", type="role", name="r", id="AROA1", path="/"
    )
    old = completed(role, "job-1", ServicesLastAccessed=[service("s3", True)], IsTruncated=True,
                    Marker="m1")  # fmt: skip
    new = completed(role, "job-2", ServicesLastAccessed=[service("s3", True), service("ec2", False)],
                    IsTruncated=True, Marker="m2")  # fmt: skip
    iam = FakeIam({"get_service_last_accessed_details": [
        client_error("NoSuchEntity", 404, "No report job found with the ID job-1."),
        {"ServicesLastAccessed": [service("lambda", True)], "IsTruncated": False},
    ]})  # fmt: skip
    asked: list[tuple[str, int]] = []

    async def regenerate(principal: Principal, spare: int) -> CompletedJob | Record:
        asked.append((principal.arn, spare))
        return new

    counters = Counters()
    first, then = await run_fetch(fake_api(iam), [old], counters, regenerate)
    assert [(r["record"], r.get("service_namespace"), r["job_id"]) for r in first] == [
        ("service", "s3", "job-1"), ("service", "ec2", "job-2"), ("service", "lambda", "job-2"),
        ("principal", None, "job-2"),
    ]  # fmt: skip
    assert then == [] and asked == [(role.arn, MAX_REGENERATIONS - 1)]
    assert (first[-1]["services"], first[-1]["services_accessed"]) == (3, 2)
    assert [c.get("Marker") for c in iam.calls["get_service_last_accessed_details"]] == [
        "m1", "m2"
    ]  # fmt: skip
    assert (counters.errors, counters.principals_done) == (0, 1)


async def test_entity_workers_that_see_a_job_lost_share_one_new_job() -> None:
    """Three namespaces read side by side all hit NoSuchEntity on their second page: one new
    job is generated (the others wait for it), each namespace is read again from its first page
    with the entities already written skipped, and the principal line names the new job."""
    old = completed(GROUP, "job-1", ServicesLastAccessed=[
        service("s3", True), service("ec2", True), service("lambda", True)])  # fmt: skip
    new = completed(GROUP, "job-2", ServicesLastAccessed=[])
    pages = {ns: [entity("a"), entity(f"{ns}-user")] for ns in ("s3", "ec2", "lambda")}
    answer = LosingEntityPages("job-1", pages, workers=3)
    iam = FakeIam({"get_service_last_accessed_details_with_entities": [answer] * 9})
    generated = 0

    async def regenerate(principal: Principal, spare: int) -> CompletedJob | Record:
        nonlocal generated
        generated += 1
        await answer.all_lost.wait()  # every worker has seen the loss before the new job is known
        return new

    first, then = await run_fetch(fake_api(iam), [old], Counters(), regenerate, entity_workers=3)
    assert generated == 1 and answer.losses == 3
    assert [r["job_id"] for r in first] == ["job-1"] * 3
    rows = {(r["service_namespace"], r["entity_name"], r["job_id"]) for r in then[:-1]}
    assert rows == {(ns, "a", "job-1") for ns in pages} | {
        (ns, f"{ns}-user", "job-2") for ns in pages
    }
    assert len(then) == 7 and then[-1]["record"] == "principal"
    assert (then[-1]["job_id"], then[-1]["entities"]) == ("job-2", 6)


async def test_a_new_job_that_fails_is_the_reports_one_error() -> None:
    """When the new job cannot be had (the principal was deleted meanwhile), its error record
    is written once, however many workers waited for it, and no principal line follows."""
    old = completed(
        GROUP, "job-1", ServicesLastAccessed=[service("s3", True), service("ec2", True)]
    )
    answer = LosingEntityPages("job-1", {}, workers=2)
    iam = FakeIam({"get_service_last_accessed_details_with_entities": [answer] * 4})

    async def regenerate(principal: Principal, spare: int) -> CompletedJob | Record:
        await answer.all_lost.wait()  # the other worker waits for this one
        return error_record(CTX, principal, None, "generate", "NoSuchEntity", "gone")

    counters = Counters()
    first, then = await run_fetch(fake_api(iam), [old], counters, regenerate, entity_workers=2)
    assert [r["record"] for r in first] == ["service", "service"]
    assert [(r["record"], r.get("stage"), r.get("code")) for r in then if r["record"] != "entity"] == [
        ("error", "generate", "NoSuchEntity")
    ]  # fmt: skip
    assert (counters.errors, counters.principals_done) == (1, 0)


async def test_a_job_lost_again_and_again_ends_in_one_error() -> None:
    """Each new job is lost too: after MAX_REGENERATIONS new jobs the report is an error record
    (the stage that saw the last loss, AWS's code), not a loop."""
    made = 0

    async def regenerate(principal: Principal, spare: int) -> CompletedJob | Record:
        nonlocal made
        made += 1
        return completed(GROUP, f"job-{made + 1}", ServicesLastAccessed=[service("s3", False)],
                         IsTruncated=True, Marker="m")  # fmt: skip

    lost = client_error("NoSuchEntity", 404, "No report job found.")
    iam = FakeIam({"get_service_last_accessed_details": [lost] * (MAX_REGENERATIONS + 1)})
    old = completed(GROUP, "job-1", ServicesLastAccessed=[service("s3", False)], IsTruncated=True,
                    Marker="m")  # fmt: skip
    counters = Counters()
    first, then = await run_fetch(fake_api(iam), [old], counters, regenerate)
    assert made == MAX_REGENERATIONS and then == []
    assert [(r["record"], r.get("stage"), r.get("code"), r["job_id"]) for r in first] == [
        ("service", None, None, "job-1"),
        ("error", "services", "NoSuchEntity", f"job-{MAX_REGENERATIONS + 1}"),
    ]
    assert f"after {MAX_REGENERATIONS} new jobs" in first[-1]["message"]
    assert (counters.errors, counters.principals_done) == (1, 0)


def job() -> PendingJob:
    return PendingJob(principal=GROUP, job_id="job-1", started=anyio.current_time())


def status(state: str, **extra: Any) -> dict[str, Any]:
    page: dict[str, Any] = {"JobStatus": state, "JobType": "SERVICE_LEVEL", "JobCreationDate": T0}
    if state != "IN_PROGRESS":
        page["JobCompletionDate"] = T0 + timedelta(seconds=3)
    return page | extra


async def test_poll_waits_for_completion_and_hands_on_the_first_page() -> None:
    """IN_PROGRESS is polled again; the COMPLETED answer travels on with its services."""
    iam = FakeIam({"get_service_last_accessed_details": [
        status("IN_PROGRESS"), status("COMPLETED", ServicesLastAccessed=[service("s3", False)])]})  # fmt: skip
    completed, errors = await run_poll(iam)
    assert errors == []
    (done,) = completed
    assert isinstance(done, CompletedJob)
    assert done.first_page is not None
    assert (
        done.polls == 2 and done.first_page["ServicesLastAccessed"][0]["ServiceNamespace"] == "s3"
    )
    assert all(
        c == {"JobId": "job-1", "MaxItems": 1000}
        for c in iam.calls["get_service_last_accessed_details"]
    )


async def run_poll(iam: FakeIam, deadline: float = 10.0) -> tuple[list[Any], list[Any]]:
    """Run the poll stage on one job; return (completed jobs, error records)."""
    in_send, in_receive = anyio.create_memory_object_stream[Any](1)
    done_send, done_receive = anyio.create_memory_object_stream[Any](10)
    rec_send, rec_receive = anyio.create_memory_object_stream[Any](10)
    async with in_send:
        await in_send.send(job())
    with anyio.fail_after(10):
        env = stage_env(fake_api(iam), deadline=deadline)
        await jobs.poll(env, jobs.PollSchedule(FAST_POLL), in_receive, done_send, rec_send)
    async with done_receive, rec_receive:
        return [d async for d in done_receive], [r async for r in rec_receive]


async def test_poll_reports_a_failed_job_with_aws_error() -> None:
    """A FAILED job becomes a `poll` error record carrying AWS's code and message."""
    iam = FakeIam({"get_service_last_accessed_details": [
        status("FAILED", Error={"Code": "InternalError", "Message": "boom"})]})  # fmt: skip
    done, errors = await run_poll(iam)
    assert done == []
    assert [(e["stage"], e["code"], e["message"], e["job_id"]) for e in errors] == [
        ("poll", "InternalError", "boom", "job-1")
    ]


async def test_poll_gives_up_at_the_deadline_with_job_timeout() -> None:
    """A job still IN_PROGRESS at its deadline becomes a JobTimeout error."""
    iam = FakeIam({"get_service_last_accessed_details": [status("IN_PROGRESS")] * 100})
    done, errors = await run_poll(iam, deadline=0.1)
    assert done == [] and [(e["stage"], e["code"]) for e in errors] == [("poll", "JobTimeout")]


async def test_poll_regenerates_a_lost_job_once() -> None:
    """A JobId that reads as NoSuchEntity is generated again, and the new job is polled."""
    iam = FakeIam({
        "get_service_last_accessed_details": [client_error("NoSuchEntity", 404), status("COMPLETED")],
        "generate_service_last_accessed_details": [{"JobId": "job-2"}],
    })  # fmt: skip
    done, errors = await run_poll(iam)
    assert errors == [] and [d.job_id for d in done] == ["job-2"]
    assert iam.calls["generate_service_last_accessed_details"] == [
        {"Arn": GROUP.arn, "Granularity": "SERVICE_LEVEL"}
    ]


async def test_poll_reports_a_job_lost_twice() -> None:
    """The second NoSuchEntity on a regenerated job is an error, not a loop."""
    iam = FakeIam({
        "get_service_last_accessed_details": [client_error("NoSuchEntity", 404)] * 2,
        "generate_service_last_accessed_details": [{"JobId": "job-2"}],
    })  # fmt: skip
    done, errors = await run_poll(iam)
    assert done == [] and [(e["code"], e["job_id"]) for e in errors] == [("NoSuchEntity", "job-2")]


async def test_generate_reports_a_principal_deleted_since_listing() -> None:
    """NoSuchEntity on generation is a `generate` error record with no job id."""
    iam = FakeIam({"generate_service_last_accessed_details": [
        client_error("NoSuchEntity", 404, "gone"), {"JobId": "job-9"}]})  # fmt: skip
    rec_send, rec_receive = anyio.create_memory_object_stream[Any](10)
    env = stage_env(fake_api(iam), granularity="ACTION_LEVEL")
    out = await run_stage(
        lambda receive, send: jobs.generate(env, receive, send, rec_send), [GROUP, GROUP]
    )
    async with rec_receive:
        errors = [r async for r in rec_receive]
    assert [j.job_id for j in out] == ["job-9"]
    assert [(e["stage"], e["code"], e["job_id"], e["message"]) for e in errors] == [
        ("generate", "NoSuchEntity", None, "gone")
    ]
    assert iam.calls["generate_service_last_accessed_details"][1]["Granularity"] == "ACTION_LEVEL"


def listing(kind: str, names: list[str], marker: str | None = None) -> dict[str, Any]:
    key = {"ListPolicies": ("Policies", "PolicyName", "PolicyId", "policy"),
           "ListUsers": ("Users", "UserName", "UserId", "user")}[kind]  # fmt: skip
    items = [
        {key[1]: n, key[2]: f"ID{n}", "Path": "/", "Arn": f"arn:aws:iam::123456789012:{key[3]}/{n}"}
        for n in names
    ]
    return {key[0]: items, "IsTruncated": marker is not None} | (
        {"Marker": marker} if marker else {}
    )


async def test_discover_lists_local_and_attached_aws_policies_with_filters() -> None:
    """Policies come from Scope=Local and Scope=AWS,OnlyAttached; globs and the skip set apply."""
    iam = FakeIam({"list_policies": [
        listing("ListPolicies", ["app-read", "app-write"], marker="p2"),
        listing("ListPolicies", ["legacy-admin", "app-done"]),
        listing("ListPolicies", ["ReadOnlyAccess"]),
    ]})  # fmt: skip
    settings = DiscoverySettings(
        include=("app-*", "Read*"), exclude=("*-write",), aws_managed_policies=True
    )
    skip = frozenset({"arn:aws:iam::123456789012:policy/app-done"})
    counters = Counters()
    out_send, out_receive = anyio.create_memory_object_stream[Any](100)
    env = stage_env(fake_api(iam), discovery=settings, counters=counters)
    await discover.list_principals(env, "policy", skip, out_send)
    async with out_receive:
        names = [p.name async for p in out_receive]
    assert names == ["app-read", "ReadOnlyAccess"] and counters.principals_found == 2
    scopes = [
        (c.get("Scope"), c.get("OnlyAttached"), c.get("Marker")) for c in iam.calls["list_policies"]
    ]
    assert scopes == [("Local", None, None), ("Local", None, "p2"), ("AWS", True, None)]


async def test_a_throttled_list_page_resumes_at_its_marker() -> None:
    """Throttling mid-listing retries from the last Marker: no user skipped or repeated."""
    iam = FakeIam({"list_users": [
        listing("ListUsers", ["a", "b"], marker="m1"), client_error("Throttling", 400, "Rate exceeded"),
        listing("ListUsers", ["c"]),
    ]})  # fmt: skip
    api = fake_api(iam)
    out_send, out_receive = anyio.create_memory_object_stream[Any](100)
    await discover.list_principals(stage_env(api), "user", frozenset(), out_send)
    async with out_receive:
        assert [p.name async for p in out_receive] == ["a", "b", "c"]
    assert [c.get("Marker") for c in iam.calls["list_users"]] == [None, "m1", "m1"]
    assert api.stats.throttled["ListUsers"] == 1 and api.stats.calls["ListUsers"] == 3


async def test_throttling_is_retried_and_slows_the_bucket() -> None:
    """A throttled call is retried until it succeeds; its bucket's rate drops."""
    iam = FakeIam(
        {
            "generate_service_last_accessed_details": [client_error("Throttling")] * 3
            + [{"JobId": "j"}]
        }
    )
    api = fake_api(iam)
    bucket = api._buckets["GenerateServiceLastAccessedDetails"]
    ceiling = bucket.rate
    assert await api.generate("x", "SERVICE_LEVEL") == "j"
    assert api.stats.throttled["GenerateServiceLastAccessedDetails"] == 3
    assert bucket.rate < ceiling


async def test_transient_errors_are_retried_up_to_the_budget() -> None:
    """5xx answers are retried max_attempts times, then surface as RetriesExhaustedError."""
    iam = FakeIam(
        {"get_service_last_accessed_details": [client_error("ServiceUnavailable", 503)] * 3}
    )
    with pytest.raises(RetriesExhaustedError) as caught:
        await fake_api(iam, max_attempts=3).job_page("j")
    assert caught.value.code == "ServiceUnavailable"
    assert len(iam.calls["get_service_last_accessed_details"]) == 3


def test_poll_schedule_windows_follow_observed_latency() -> None:
    """Once enough jobs finished, a first poll is due at their 98th-percentile latency.

    Its window opens at the median (early polls only on idle slots; before the latency is
    learned there is no early window); a second poll is due after the gap to the 99.5th
    percentile.
    """
    schedule = jobs.PollSchedule(PollSettings(first_delay=9.0, jitter=0.0))
    assert schedule.first_window() == (9.0, 9.0)
    for tenth in range(1, 101):
        schedule.observe(T0, T0 + timedelta(seconds=tenth / 10))
    early, due = schedule.first_window()
    assert early == pytest.approx(5.1) and due == pytest.approx(9.9)
    assert schedule.next_window(1) == pytest.approx((0.25, 0.25))


def test_schedules_sharing_latencies_learn_from_each_others_jobs() -> None:
    """An account sweep that starts after others polls at their learned latency at once;
    one with a learner of its own still waits out the configured first delay."""
    shared = jobs.JobLatencies()
    settings = PollSettings(first_delay=9.0, jitter=0.0)
    first = jobs.PollSchedule(settings, shared)
    for _ in range(20):
        first.observe(T0, T0 + timedelta(seconds=2))
    assert jobs.PollSchedule(settings, shared).first_window() == (2.0, 2.0)
    assert jobs.PollSchedule(settings).first_window() == (9.0, 9.0)


async def test_an_idle_get_slot_goes_to_the_soonest_due_waiter() -> None:
    """Waiters take slots nobody reserved in the order their polls are due, not of arrival."""
    bucket = TokenBucket(20.0)  # a slot every 50 ms
    bucket.reserve()  # the slot free now is a paced caller's: the waiters queue for the next
    idle = IdleTokens(bucket)
    now = anyio.current_time()
    granted: list[float] = []

    async def wait(due: float) -> None:
        if await idle.claim(due):
            granted.append(due)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            for due in (now + 30, now + 10, now + 20):
                group.start_soon(wait, due)
    assert granted == [now + 10, now + 20, now + 30]


async def test_a_slot_a_paced_caller_reserved_is_not_idle() -> None:
    """While paced callers have reserved every slot up to a waiter's due time, it gets none."""
    bucket = TokenBucket(20.0)
    for _ in range(10):  # the next half second of slots
        bucket.reserve()
    with anyio.fail_after(5):
        taken = await IdleTokens(bucket).claim(anyio.current_time() + 0.3)
    assert not taken
    assert bucket.free_in() > 0.1  # still the paced callers' slots, none given away


class FakeTime:
    """A clock that moves only when the code under test sleeps: poll timing without waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)


async def test_an_idle_get_slot_polls_a_job_before_it_is_due() -> None:
    """Past the median latency, a job is polled on an idle slot instead of at its due time."""
    idle = IdleTokens(TokenBucket(1000.0))
    schedule = jobs.PollSchedule(PollSettings(jitter=0.0), idle=idle)
    for latency in [0.0] * 11 + [20.0] * 9:  # window opens at once, poll due after 20 s
        schedule.observe(T0, T0 + timedelta(seconds=latency))
    iam = FakeIam({"get_service_last_accessed_details": [status("COMPLETED")]})
    env = stage_env(fake_api(iam), deadline=60.0)
    pending = PendingJob(principal=GROUP, job_id="j", started=anyio.current_time())
    with anyio.fail_after(10):  # well before the 20 s it is due
        done = await jobs._poll_job(env, schedule, pending, anyio.current_time, anyio.sleep)
    assert isinstance(done, CompletedJob) and done.polls == 1


async def test_without_idle_slots_a_job_waits_for_its_due_time() -> None:
    """No idle slots (an unpaced Get), or a latency not learned yet: the poll goes when due."""
    for learned in (True, False):
        schedule = jobs.PollSchedule(PollSettings(first_delay=20.0, jitter=0.0))
        if learned:
            for latency in [0.0] * 11 + [20.0] * 9:
                schedule.observe(T0, T0 + timedelta(seconds=latency))
        time = FakeTime()
        sent_at: list[float] = []

        def completed(
            _: dict[str, Any], time: FakeTime = time, sent: list[float] = sent_at
        ) -> dict[str, Any]:
            sent.append(time.now)
            return status("COMPLETED")

        iam = FakeIam({"get_service_last_accessed_details": [completed]})
        env = stage_env(fake_api(iam), deadline=60.0)
        pending = PendingJob(principal=GROUP, job_id="j", started=0.0)
        with anyio.fail_after(2):
            done = await jobs._poll_job(env, schedule, pending, time.clock, time.sleep)
        assert isinstance(done, CompletedJob) and done.polls == 1
        assert sent_at == [pytest.approx(20.0)]
