"""deploy/ files checked against their real schemas, without a cluster or an AWS account.

Kubernetes manifests: kubernetes-validate (jsonschema against the schemas generated from the
official OpenAPI, strict: unknown fields fail). AWS: botocore's own ParamValidator against the
service models the AWS SDKs are generated from.
"""

from __future__ import annotations

import json
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import botocore.session
import kubernetes_validate
import pytest
import yaml
from botocore.model import ListShape, Shape, StructureShape
from botocore.validate import ParamValidator

from collector.cli import _overrides, build_parser
from collector.config.loading import check_mode, load_settings
from collector.org.shard import resolve_shard
from collector.org.sweep import check_org_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# The oldest Kubernetes with everything used here GA (backoffLimitPerIndex: 1.33), and the newest.
K8S_VERSIONS = ["1.33", kubernetes_validate.latest_version()]
# The lead's default shutdown_grace is 20 s; the final flush and upload need a few more.
MIN_STOP_SECONDS = 30
SHARDS = 8
BOTOCORE = botocore.session.get_session()


def input_shape(service: str, operation: str) -> StructureShape:
    shape = BOTOCORE.get_service_model(service).operation_model(operation).input_shape
    assert shape is not None, f"{service} {operation} takes no input"
    return shape


def api_errors(params: dict[str, Any], service: str, operation: str) -> str:
    """botocore's report of what the service would reject before the call is sent; '' if none."""
    report = ParamValidator().validate(params, input_shape(service, operation))
    return str(report.generate_report()) if report.has_errors() else ""


def load_json(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEPLOY / relative).read_text())
    return data


def k8s_documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / "kubernetes" / name).read_text()) if d]


def k8s_errors(document: dict[str, Any], version: str) -> str:
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return f"{'.'.join(map(str, error.path))}: {error.message}"
    return ""


def pod_specs(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        d["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        for d in documents
        if d["kind"] == "CronJob"
    ]


def env_of(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", [])}


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", ["single-account.yaml", "org-sweep.yaml"])
def test_kubernetes_manifests_match_the_api_schema(name: str, version: str) -> None:
    """Every document validates strictly (no unknown or mistyped field) against that version."""
    documents = k8s_documents(name)
    assert documents
    for document in documents:
        assert k8s_errors(document, version) == "", document["metadata"]["name"]


def test_the_kubernetes_validator_is_not_vacuous() -> None:
    """A misspelt field and a string count are rejected, so a pass above means something."""
    cronjob = next(d for d in k8s_documents("org-sweep.yaml") if d["kind"] == "CronJob")
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFS"] = True
    assert "readOnlyRootFS" in k8s_errors(cronjob, K8S_VERSIONS[0])
    del container["securityContext"]["readOnlyRootFS"]
    cronjob["spec"]["jobTemplate"]["spec"]["completions"] = "8"
    assert "is not of type 'integer'" in k8s_errors(cronjob, K8S_VERSIONS[0])


@pytest.mark.parametrize("name", ["single-account.yaml", "org-sweep.yaml"])
def test_kubernetes_pods_are_locked_down_and_stop_gracefully(name: str) -> None:
    """Non-root, read-only root with an emptyDir /tmp, no privilege escalation, IRSA, grace >= 30 s."""
    documents = k8s_documents(name)
    accounts = {d["metadata"]["name"]: d for d in documents if d["kind"] == "ServiceAccount"}
    for spec in pod_specs(documents):
        assert spec["terminationGracePeriodSeconds"] >= MIN_STOP_SECONDS
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        account = accounts[spec["serviceAccountName"]]
        assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
            "arn:aws:iam::"
        )
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]]


def test_org_sweep_is_an_indexed_job_and_merge_runs_after_its_deadline() -> None:
    """completions = parallelism = COLLECTOR_SHARD_COUNT, per-index retries; merge after the deadline."""
    cronjobs = {d["metadata"]["name"]: d for d in k8s_documents("org-sweep.yaml") if d["kind"] == "CronJob"}  # fmt: skip
    sweep, merge = cronjobs["collector-org-sweep"], cronjobs["collector-org-merge"]
    job = sweep["spec"]["jobTemplate"]["spec"]
    assert job["completionMode"] == "Indexed"
    assert job["completions"] == job["parallelism"] == SHARDS
    assert job["backoffLimitPerIndex"] >= 1
    for cronjob in (sweep, merge):
        (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
        assert env_of(container)["COLLECTOR_SHARD_COUNT"] == str(SHARDS)
        assert cronjob["spec"]["timeZone"] == "Etc/UTC"
    (sweep_container,) = job["template"]["spec"]["containers"]
    args = sweep_container["args"]
    assert args[:2] == ["sweep", "--org"] and "--resume" in args
    assert "{shard}" in args[args.index("--manifest") + 1]
    # Same UTC day (the run id both derive), and the sweep's deadline passed before the merge.
    start, merge_at = cron_hour(sweep), cron_hour(merge)
    assert start + job["activeDeadlineSeconds"] / 3600 < merge_at < 24


def test_org_merge_reads_exactly_the_manifests_the_shards_write(tmp_path: Path) -> None:
    """The merge pod's shell line, run with a stand-in collector, names every shard's manifest."""
    cronjobs = {d["metadata"]["name"]: d for d in k8s_documents("org-sweep.yaml") if d["kind"] == "CronJob"}  # fmt: skip
    (sweep,) = cronjobs["collector-org-sweep"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]  # fmt: skip
    (merge,) = cronjobs["collector-org-merge"]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]  # fmt: skip
    stand_in = tmp_path / "collector"
    stand_in.write_text('#!/bin/sh\nfor arg in "$@"; do echo "$arg"; done\n')
    stand_in.chmod(0o755)
    before = datetime.now(UTC).strftime("%Y-%m-%d")
    proc = subprocess.run(
        [*merge["command"], *merge["args"]], capture_output=True, text=True, timeout=30, check=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", **env_of(merge)},
    )  # fmt: skip
    after = datetime.now(UTC).strftime("%Y-%m-%d")
    template = sweep["args"][sweep["args"].index("--manifest") + 1]
    expected = {
        run_id: [
            "manifest", "merge", "--expect-shards", str(SHARDS),
            "--output", template.replace("{run_id}", run_id).replace("shard-{shard}", "org"),
            *[template.format(run_id=run_id, shard=i) for i in range(SHARDS)],
        ]
        for run_id in (before, after)
    }  # fmt: skip
    assert proc.stdout.splitlines() in expected.values()


def cron_hour(cronjob: dict[str, Any]) -> int:
    minute, hour, *_ = cronjob["spec"]["schedule"].split()
    assert minute.isdigit() and hour.isdigit()
    return int(hour)


# --- AWS Batch ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["job-definition-sweep.json", "job-definition-merge.json"])
def test_batch_job_definitions_match_register_job_definition(name: str) -> None:
    """botocore's batch model accepts the job definition; the container is locked down."""
    definition = load_json(f"aws-batch/{name}")
    assert api_errors(definition, "batch", "RegisterJobDefinition") == ""
    (task,) = definition["ecsProperties"]["taskProperties"]
    (container,) = task["containers"]
    assert container["stopTimeout"] >= MIN_STOP_SECONDS
    assert container["readonlyRootFilesystem"] is True
    assert not container["user"].startswith("0")
    assert {m["containerPath"] for m in container["mountPoints"]} == {"/tmp"}


def test_the_botocore_validator_is_not_vacuous() -> None:
    """A misspelt key and a string where an integer belongs are rejected."""
    definition = load_json("aws-batch/job-definition-sweep.json")
    definition["ecsProperties"]["taskProperties"][0]["containers"][0]["stopTimeOut"] = 60
    assert "stopTimeOut" in api_errors(definition, "batch", "RegisterJobDefinition")
    task_definition = load_json("ecs/task-definition.json")
    task_definition["containerDefinitions"][0]["stopTimeout"] = "60"
    assert "stopTimeout" in api_errors(task_definition, "ecs", "RegisterTaskDefinition")


def test_batch_array_submission_matches_submit_job() -> None:
    """The ad-hoc submission is a valid SubmitJob of an array of SHARDS children."""
    submission = load_json("aws-batch/submit-job.json")
    assert api_errors(submission, "batch", "SubmitJob") == ""
    assert submission["arrayProperties"]["size"] == SHARDS


def api_params(value: Any, shape: Shape) -> Any:
    """Step Functions' PascalCase parameters as the API's own: `Key.$` paths become samples."""
    if isinstance(shape, StructureShape):  # botocore's class for type_name "structure"
        members = {name.lower(): name for name in shape.members}
        params = {}
        for key, item in value.items():
            name = members[key.removesuffix(".$").lower()]
            member = shape.members[name]
            params[name] = sample(member) if key.endswith(".$") else api_params(item, member)
        return params
    if isinstance(shape, ListShape):  # type_name "list"
        return [api_params(item, shape.member) for item in value]
    return value  # maps (tags) and scalars pass as they are


def sample(shape: Shape) -> Any:
    """A valid value of the shape, standing for what a JsonPath fills in at run time."""
    return ["x"] if shape.type_name == "list" else "x"


def command_of(task: dict[str, Any]) -> str:
    """The intrinsic (`States.Array(...)`) a Task gives as the collector's command."""
    overrides = task["Parameters"]["EcsPropertiesOverride"]["TaskProperties"]
    ((container,),) = [t["Containers"] for t in overrides]
    command: str = container["Command.$"]
    return command


def test_batch_state_machine_submits_valid_jobs_in_order() -> None:
    """Each Task is a valid SubmitJob; the sweep is the array; the merge runs after it, even on failure."""
    machine = load_json("aws-batch/state-machine.asl.json")
    states = machine["States"]
    assert machine["StartAt"] in states
    for state in states.values():
        for target in [state.get("Next"), state.get("Default")] + [
            c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])
        ]:
            assert target is None or target in states
    tasks = {name: s for name, s in states.items() if s["Type"] == "Task"}
    assert set(tasks) == {"Sweep", "Merge"}
    for task in tasks.values():
        assert task["Resource"] == "arn:aws:states:::batch:submitJob.sync"
        params = api_params(task["Parameters"], input_shape("batch", "SubmitJob"))
        assert api_errors(params, "batch", "SubmitJob") == ""
    sweep = tasks["Sweep"]
    assert sweep["Parameters"]["ArrayProperties"]["Size"] == SHARDS
    assert sweep["Next"] == "Merge" and sweep["Catch"][0]["Next"] == "Merge"
    assert tasks["Merge"]["Parameters"]["JobDefinition"] == "collector-org-merge"
    assert "'--run-id', $$.Execution.Name)" in command_of(sweep)
    manifest = re.search(r"'--manifest', '([^']+)'", command_of(sweep))
    assert manifest is not None
    merge = command_of(tasks["Merge"])
    assert f"'--expect-shards', '{SHARDS}'" in merge
    shards = re.findall(r"States.Format\('([^']+)', \$\$.Execution.Name\)", merge)[1:]
    assert shards == [manifest[1].format(run_id="{}", shard=i) for i in range(SHARDS)]


def test_batch_schedule_matches_create_schedule() -> None:
    """EventBridge Scheduler starts the state machine nightly, in UTC, with retries."""
    schedule = load_json("aws-batch/schedule.json")
    assert api_errors(schedule, "scheduler", "CreateSchedule") == ""
    assert schedule["Target"]["Arn"].startswith("arn:aws:states:")
    assert schedule["ScheduleExpressionTimezone"] == "Etc/UTC"


# --- ECS ------------------------------------------------------------------------------------


def test_ecs_task_definition_matches_register_task_definition() -> None:
    """botocore's ecs model accepts the task definition; stopTimeout covers the graceful stop."""
    definition = load_json("ecs/task-definition.json")
    assert api_errors(definition, "ecs", "RegisterTaskDefinition") == ""
    (container,) = definition["containerDefinitions"]
    assert container["stopTimeout"] >= MIN_STOP_SECONDS
    assert container["readonlyRootFilesystem"] is True
    assert not container["user"].startswith("0")
    volumes = {v["name"] for v in definition["volumes"]}
    assert {m["sourceVolume"] for m in container["mountPoints"]} <= volumes


def test_ecs_schedule_rule_and_target_match_the_events_model() -> None:
    """PutRule and PutTargets inputs are valid and the target runs that task definition."""
    rule, targets = load_json("ecs/rule.json"), load_json("ecs/targets.json")
    assert api_errors(rule, "events", "PutRule") == ""
    assert api_errors(targets, "events", "PutTargets") == ""
    assert targets["Rule"] == rule["Name"]
    (target,) = targets["Targets"]
    family = load_json("ecs/task-definition.json")["family"]
    assert target["EcsParameters"]["TaskDefinitionArn"].endswith(f"task-definition/{family}")


# --- IAM ------------------------------------------------------------------------------------

ROLE_FILES = sorted(DEPLOY.glob("*/iam/*-role-*.json"))


@pytest.mark.parametrize("path", ROLE_FILES, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_iam_documents_are_valid_policies(path: Path) -> None:
    """Each document is a policy IAM would parse; trust policies name a principal."""
    text = path.read_text()
    document = json.loads(text)
    role = path.name.split("-role-")[0].replace("-", "")
    if path.name.endswith("-trust.json"):
        params = {"RoleName": role, "AssumeRolePolicyDocument": text}
        assert api_errors(params, "iam", "CreateRole") == ""
    else:
        params = {"RoleName": role, "PolicyName": "collector", "PolicyDocument": text}
        assert api_errors(params, "iam", "PutRolePolicy") == ""
    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert statement["Effect"] in {"Allow", "Deny"} and "Action" in statement
        assert ("Principal" in statement) == path.name.endswith("-trust.json")
        assert ("Resource" in statement) != path.name.endswith("-trust.json")


def test_every_role_has_a_trust_and_a_permissions_policy() -> None:
    """Roles come in pairs: who may assume it, and what it may do."""
    stems = {p.parent / p.name.rsplit("-role-", 1)[0] for p in ROLE_FILES}
    assert stems
    for stem in stems:
        for kind in ("trust", "policy"):
            assert stem.with_name(f"{stem.name}-role-{kind}.json").exists(), stem


def collector_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    """(where, argv after `collector`, environment) of every collector run the deploy files make."""
    found = []
    for name in ("single-account.yaml", "org-sweep.yaml"):
        for spec in pod_specs(k8s_documents(name)):
            for container in spec["containers"]:
                args = container.get("args") or []
                if args and args[0] in ("sweep", "manifest"):
                    found.append((name, list(args), env_of(container)))
    for name in ("aws-batch/job-definition-sweep.json", "ecs/task-definition.json"):
        document = load_json(name)
        containers = document.get("containerDefinitions") or [
            c for task in document["ecsProperties"]["taskProperties"] for c in task["containers"]
        ]
        for container in containers:
            env = {e["name"]: e["value"] for e in container.get("environment", [])}
            found.append((name, list(container["command"]), env))
    return found


@pytest.mark.parametrize("where, argv, env", collector_commands(), ids=lambda v: str(v)[:40])
def test_deploy_commands_parse_with_the_real_cli(
    where: str, argv: list[str], env: dict[str, str]
) -> None:
    """Every flag and setting the deploy files pass is one collector accepts (no AWS needed)."""
    args = build_parser(emulator_options=False).parse_args(argv)
    if args.command != "sweep":
        return
    settings = load_settings(None, env | {"JOB_COMPLETION_INDEX": "0"}, _overrides(args))
    if not settings.org.enabled:
        check_mode(settings)  # no organisation-only key in a single-account job
    if settings.org.enabled:
        check_org_settings(settings)
        resolve_shard(
            settings.shard,
            env | ({"JOB_COMPLETION_INDEX": "0"} if "COLLECTOR_SHARD_COUNT" in env else {}),
        )
