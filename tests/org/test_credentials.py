"""Per-account credentials against a real moto server: AssumeRole, refresh, denial, settings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from aiobotocore.session import AioSession

from collector.config.settings import RetrySettings, Settings
from collector.errors import AssumeRoleError, AwsError, ConfigError, CredentialRefreshError
from collector.org.credentials import (
    REFRESH_BACKOFF,
    AssumeRoleSettings,
    account_session,
    session_account,
    session_name,
    sts_client,
)
from tests.support.hostile import proxy
from tests.support.moto_org import (
    AUDIT_ROLE,
    MANAGEMENT,
    MotoOrg,
    add_user,
    allow,
    build_org,
    moto_server,
)

if TYPE_CHECKING:
    from types_aiobotocore_sts.type_defs import GetCallerIdentityResponseTypeDef

RUN_ID = "2026-11-23"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{MANAGEMENT}:root"},
            "Action": "sts:AssumeRole",
        }
    ],
}


@pytest.fixture
def moto() -> Iterator[MotoOrg]:
    with moto_server() as org:
        yield org


@pytest.fixture
async def org(moto: MotoOrg) -> MotoOrg:
    """The org, with the audit role created inside the `web` member account."""
    with anyio.fail_after(30):
        await build_org(moto)
        async with moto.client("sts") as sts:
            # moto grants any AssumeRole: the account's bootstrap role stands in for the admin.
            bootstrap = await sts.assume_role(
                RoleArn=f"arn:aws:iam::{moto.accounts['web']}:role/OrganizationAccountAccessRole",
                RoleSessionName="bootstrap",
            )
        keys = bootstrap["Credentials"]
        async with moto.client(
            "iam",
            aws_access_key_id=keys["AccessKeyId"],
            aws_secret_access_key=keys["SecretAccessKey"],
            aws_session_token=keys["SessionToken"],
        ) as iam:
            await iam.create_role(RoleName=AUDIT_ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    return moto


def settings(org: MotoOrg, **fields: Any) -> AssumeRoleSettings:
    return AssumeRoleSettings(role_name=AUDIT_ROLE, endpoint_url=org.url, **fields)


class Recorder:
    """Every AssumeRole request's parameters, and the access key each STS request was signed with."""

    def __init__(self) -> None:
        self.assume_role: list[dict[str, Any]] = []
        self.signed_with: list[str] = []

    def on_params(self, params: dict[str, Any], **_: Any) -> None:
        self.assume_role.append(dict(params))

    def on_send(self, request: Any, **_: Any) -> None:
        header = request.headers["Authorization"]
        header = header.decode() if isinstance(header, bytes) else header
        self.signed_with.append(header.split("Credential=")[1].split("/")[0])


async def identity(
    session: AioSession, org: MotoOrg, recorder: Recorder
) -> GetCallerIdentityResponseTypeDef:
    """GetCallerIdentity through a client of `session`, noting the key that signed it."""
    async with session.create_client("sts", region_name="us-east-1", endpoint_url=org.url) as sts:
        sts.meta.events.register("before-send.sts.GetCallerIdentity", recorder.on_send)
        response = await sts.get_caller_identity()
    return response


async def test_caller_account_keeps_the_callers_own_session(org: MotoOrg) -> None:
    """The caller's own account is swept with the caller's credentials: no AssumeRole."""
    base = AioSession()
    recorder = Recorder()
    base.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    with anyio.fail_after(30):
        caller = await session_account(base, Settings(endpoint_url=org.url))
        session = await account_session(
            base, MANAGEMENT, caller_account=caller, settings=settings(org), run_id=RUN_ID
        )
    assert caller == MANAGEMENT
    assert session is base
    assert recorder.assume_role == []


async def test_the_callers_account_is_asked_through_the_one_retry_policy(org: MotoOrg) -> None:
    """sts:GetCallerIdentity throttled four times: the org run's caller lookup rides it out on
    the project's retry policy (the single sweep's), where botocore's retries (three) gave up."""
    throttled = [4]

    def rule(operation: str, body: bytes) -> tuple[int, bytes] | None:
        if operation != "GetCallerIdentity" or not throttled[0]:
            return None
        throttled[0] -= 1
        return 400, (
            b"<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"
            b"<Message>Rate exceeded</Message></Error></ErrorResponse>"
        )

    retry = RetrySettings(base_delay=0.01, max_delay=0.05)
    with proxy(org.url, rule) as url, anyio.fail_after(30):
        account = await session_account(AioSession(), Settings(endpoint_url=url, retry=retry))
    assert account == MANAGEMENT and throttled == [0]


async def test_member_account_session_acts_in_that_account(org: MotoOrg) -> None:
    """A member account's session is the audit role's: its calls land in that account."""
    web = org.accounts["web"]
    base = AioSession()
    recorder = Recorder()
    base.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    with anyio.fail_after(30):
        session = await account_session(
            base,
            web,
            caller_account=MANAGEMENT,
            settings=settings(org, external_id="audit-2026", duration_seconds=1800),
            run_id=RUN_ID,
        )
        who = await identity(session, org, Recorder())
        async with session.create_client(
            "iam", region_name="us-east-1", endpoint_url=org.url
        ) as iam:
            roles = [role["RoleName"] for role in (await iam.list_roles())["Roles"]]
    assert who["Account"] == web
    assert session.get_component("data_loader") is base.get_component("data_loader")
    assert who["Arn"] == f"arn:aws:sts::{web}:assumed-role/{AUDIT_ROLE}/collector-{RUN_ID}"
    assert AUDIT_ROLE in roles  # the member account's IAM, where the role was created
    assert recorder.assume_role == [
        {
            "RoleArn": f"arn:aws:iam::{web}:role/{AUDIT_ROLE}",
            "RoleSessionName": f"collector-{RUN_ID}",
            "ExternalId": "audit-2026",
            "DurationSeconds": 1800,
        }
    ]


async def test_assumed_credentials_refresh_before_they_expire(org: MotoOrg) -> None:
    """aiobotocore refreshes on the injected clock: not before the advisory window, inside it
    with a new AssumeRole, and in the mandatory window too; clients sign with the new keys.
    """
    shift = [timedelta(0)]

    def clock() -> datetime:  # moto's expiries follow the wall clock; we move ahead of it
        return datetime.now(UTC) + shift[0]

    base, recorder = AioSession(), Recorder()
    base.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    web = org.accounts["web"]
    with anyio.fail_after(60):
        session = await account_session(
            base,
            web,
            caller_account=MANAGEMENT,
            settings=settings(
                org, duration_seconds=900
            ),  # windows: 225 s advisory, 150 s mandatory
            run_id=RUN_ID,
            clock=clock,
        )
        seen: list[str] = []
        for step in (0, 600, 700, 800):  # seconds into the 900-second credentials
            shift[0] = timedelta(seconds=step)
            before = len(recorder.assume_role)
            who = await identity(session, org, recorder)
            assert who["Account"] == web
            seen.append(f"{step}:{len(recorder.assume_role) - before}")
    keys = recorder.signed_with
    # 0 s and 600 s: the first credentials, no new AssumeRole.
    # 700 s: advisory window (200 s left < 225 s): one AssumeRole, new keys.
    # 800 s: the refreshed keys are 100 s from expiry (< 150 s): mandatory refresh.
    assert seen == ["0:0", "600:0", "700:1", "800:1"]
    assert keys[0] == keys[1] != keys[2] != keys[3]
    assert len(set(keys)) == 3
    assert len(recorder.assume_role) == 3


async def test_a_refresh_that_keeps_failing_ends_when_the_credentials_run_out(
    org: MotoOrg,
) -> None:
    """In the mandatory window a failed AssumeRole keeps the current keys while they are valid
    for a margin more (a tenth of their life, at most a minute); past that, the call that needed
    them fails with CredentialRefreshError (not an AwsError: no principal's failure, the
    account's) carrying AWS's code."""
    start, shift = datetime.now(UTC), [timedelta(0)]  # a frozen clock: only `shift` moves it
    web = org.accounts["web"]
    recorder = Recorder()
    with anyio.fail_after(60):
        session = await account_session(
            AioSession(),
            web,
            caller_account=MANAGEMENT,
            settings=settings(org, duration_seconds=900),
            run_id=RUN_ID,
            clock=lambda: start + shift[0],
        )
        await identity(session, org, recorder)
        shift[0] = timedelta(seconds=800)  # 100 s left: mandatory window, margin 60 s
        # The caller's dummy keys are unknown to IAM: moto now rejects them.
        with org.enforcing_iam():
            assert (await identity(session, org, recorder))["Account"] == web
            shift[0] = timedelta(seconds=860)  # 40 s left, the backoff long over
            with pytest.raises(CredentialRefreshError) as caught:
                await identity(session, org, recorder)
    assert recorder.signed_with[0] == recorder.signed_with[1]
    assert not isinstance(caught.value, AwsError)
    assert (caught.value.account_id, caught.value.code) == (web, "InvalidClientTokenId")
    assert "\n" not in str(caught.value)


async def test_a_failed_refresh_keeps_the_current_credentials_and_backs_off(org: MotoOrg) -> None:
    """In the advisory window a failed AssumeRole is not fatal: calls go on with the keys that
    are still valid, and none of them asks STS again until a backoff has passed (a failing
    refresh must not storm STS: one AssumeRole per backoff, not one per call); after it, a
    refresh can succeed."""
    start, shift = datetime.now(UTC), [timedelta(0)]  # a frozen clock: only `shift` moves it
    base, recorder = AioSession(), Recorder()
    base.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    with anyio.fail_after(60):
        session = await account_session(
            base,
            org.accounts["web"],
            caller_account=MANAGEMENT,
            settings=settings(org, duration_seconds=900),
            run_id=RUN_ID,
            clock=lambda: start + shift[0],
        )
        await identity(session, org, recorder)
        shift[0] = timedelta(seconds=700)  # advisory window: 200 s left
        with org.enforcing_iam():  # the caller's dummy keys can no longer assume the role
            for _ in range(6):
                who = await identity(session, org, recorder)
        assert len(recorder.assume_role) == 2  # the first, and one failed refresh
        shift[0] = timedelta(seconds=700 + REFRESH_BACKOFF)  # the first backoff is over
        await identity(session, org, recorder)  # enforcement off again: this refresh works
    assert who["Account"] == org.accounts["web"]
    assert len(set(recorder.signed_with[:7])) == 1
    assert recorder.signed_with[7] != recorder.signed_with[0]
    assert len(recorder.assume_role) == 3


async def test_denied_assume_role_is_a_typed_error(org: MotoOrg) -> None:
    """AssumeRole denied: AssumeRoleError with the account, the role ARN, AWS's code and message."""
    keys = await add_user(org, "no-assume", allow("organizations:*"))
    base = AioSession()
    base.set_credentials(keys["aws_access_key_id"], keys["aws_secret_access_key"])
    web = org.accounts["web"]
    with anyio.fail_after(30), org.enforcing_iam(), pytest.raises(AssumeRoleError) as caught:
        await account_session(
            base, web, caller_account=MANAGEMENT, settings=settings(org), run_id=RUN_ID
        )
    error = caught.value
    assert (error.account_id, error.code) == (web, "AccessDenied")
    assert error.role_arn == f"arn:aws:iam::{web}:role/{AUDIT_ROLE}"
    assert "not authorized to perform: sts:AssumeRole" in error.message
    assert "\n" not in str(error)


async def test_sts_uses_the_regional_endpoint_or_the_given_one() -> None:
    """No endpoint_url: the STS endpoint of the configured region; else the given URL."""
    base = AioSession()
    base.set_credentials("testing", "testing")
    regional = AssumeRoleSettings(role_name=AUDIT_ROLE, region="eu-west-1")
    emulator = AssumeRoleSettings(role_name=AUDIT_ROLE, endpoint_url="http://127.0.0.1:9")
    async with sts_client(base, regional) as sts:
        assert sts.meta.endpoint_url == "https://sts.eu-west-1.amazonaws.com"
    async with sts_client(base, emulator) as sts:
        assert sts.meta.endpoint_url == "http://127.0.0.1:9"


async def test_role_arn_partition_follows_the_region(org: MotoOrg) -> None:
    """The role ARN's partition is the region's; an unknown region name means `aws`."""
    base, recorder = AioSession(), Recorder()
    base.register("provide-client-params.sts.AssumeRole", recorder.on_params)
    web = org.accounts["web"]
    with anyio.fail_after(30):
        for region in ("cn-north-1", "emulated-1"):
            await account_session(
                base,
                web,
                caller_account=MANAGEMENT,
                settings=settings(org, region=region),
                run_id=RUN_ID,
            )
    assert [call["RoleArn"] for call in recorder.assume_role] == [
        f"arn:aws-cn:iam::{web}:role/{AUDIT_ROLE}",
        f"arn:aws:iam::{web}:role/{AUDIT_ROLE}",
    ]


def test_role_arn_uses_the_partition() -> None:
    """The role ARN names the account and the role (and a path when given)."""
    role = AssumeRoleSettings(role_name="security/collector-audit")
    assert (
        role.role_arn("111111111111") == "arn:aws:iam::111111111111:role/security/collector-audit"
    )
    assert role.role_arn("111111111111", "aws-cn").startswith("arn:aws-cn:iam::")


def test_session_name_is_sanitised_and_truncated() -> None:
    """collector-{run_id} always fits AWS's 2-64 characters of [\\w+=,.@-]."""
    assert session_name("collector-{run_id}", "2026-11-23") == "collector-2026-11-23"
    assert session_name("collector-{run_id}", "a b/c:d") == "collector-a-b-c-d"
    long = session_name("collector-{run_id}", "x" * 100)
    assert len(long) == 64 and long.startswith("collector-xxx")
    assert session_name("fixed-name", "ignored") == "fixed-name"


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"role_name": "bad name"}, "--role-name 'bad name'"),
        ({"role_name": ""}, "--role-name ''"),
        ({"role_name": "r", "duration_seconds": 600}, "--role-duration 600"),
        ({"role_name": "r", "duration_seconds": 50000}, "--role-duration 50000"),
        ({"role_name": "r", "external_id": "x"}, "--external-id"),
        ({"role_name": "r", "session_name": "no spaces"}, "--role-session-name 'no spaces'"),
        ({"role_name": "r", "session_name": "x"}, "--role-session-name 'x'"),
        ({"role_name": "r", "session_name": "a b-{run_id}"}, "--role-session-name 'a b-{run_id}'"),
    ],
)
def test_bad_assume_role_settings_are_config_errors(fields: dict[str, Any], fragment: str) -> None:
    """Each bad setting is one ConfigError line naming the flag and value."""
    with pytest.raises(ConfigError) as caught:
        AssumeRoleSettings(**fields)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
