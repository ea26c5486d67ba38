"""One IAM client for many accounts: copies share the template's parts and sign with own keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import pytest
from aiobotocore.credentials import AioCredentials
from aiobotocore.session import AioSession
from botocore.awsrequest import prepare_request_dict

from collector.aws.clients import account_iam, client_config, shared_iam
from collector.aws.fastpath import REPORT_METHODS, ReportCall
from collector.aws.shared import SharedIam, SigningError
from collector.config.settings import Settings
from collector.emulator import Faults
from collector.emulator.organization import OrgOptions
from collector.emulator.orgserver import Organization, running_organization
from tests.support.emulator_org_clients import assume
from tests.support.forwarder import counting_forwarder


@pytest.fixture(scope="module")
def org() -> Iterator[Organization]:
    with running_organization(
        OrgOptions(accounts=3, principals=4, seed=7, faults=Faults(latency=0))
    ) as served:
        yield served


def keys_of(org: Organization, account_id: str) -> AioCredentials:
    answer = assume(org, account_id)
    return AioCredentials(answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"])


def members(org: Organization) -> list[str]:
    return [account.id for account in org.accounts if not account.management]


async def template(endpoint: str) -> AsyncIterator[Any]:
    config = client_config(parameter_validation=False)
    async with AioSession().create_client(
        "iam", region_name="us-east-1", endpoint_url=endpoint, config=config
    ) as iam:
        yield iam


class Signed:
    """The access key of every IAM request's signature, in order."""

    def __init__(self) -> None:
        self.keys: list[str] = []

    def __call__(self, request: Any, **_: Any) -> None:
        header = request.headers["Authorization"]
        header = header.decode() if isinstance(header, bytes) else header
        self.keys.append(header.split("Credential=")[1].split("/")[0])


async def test_copies_differ_from_each_other_only_in_their_signers_credentials(
    org: Organization,
) -> None:
    """Two accounts' copies hold the very same session parts, emitter, endpoint (its connection
    pool), parser and endpoint resolver as the template; only the signer differs, and the two
    signers differ only in their credentials."""
    first, second = members(org)
    async for iam in template(org.endpoint):
        shared = SharedIam(iam)
        one: Any = shared.client(keys_of(org, first))
        two: Any = shared.client(keys_of(org, second))
        assert vars(one).keys() == vars(two).keys() == vars(iam).keys()
        differ = {name for name, value in vars(one).items() if vars(two)[name] is not value}
        assert differ == {"_request_signer"}
        assert one.meta.events is two.meta.events is iam.meta.events
        assert one._endpoint.http_session is two._endpoint.http_session
        signers = vars(one._request_signer), vars(two._request_signer)
        assert {name for name, value in signers[0].items() if signers[1][name] != value} == {
            "_credentials"
        }


async def test_each_copy_acts_and_signs_in_its_own_account(org: Organization) -> None:
    """Calls through each copy are signed with that account's keys (botocore's path, seen in its
    `before-send` event) and land in that account; on the short report path, which has no
    events, a job generated in one account is found there and not through another's copy."""
    first, second = members(org)
    signed = Signed()
    async for iam in template(org.endpoint):
        iam.meta.events.register("before-send.iam", signed)
        shared = SharedIam(iam, report_calls="short")  # as shared_iam makes it
        keys = {first: keys_of(org, first), second: keys_of(org, second)}
        copies = {account: await account_iam(shared, keys[account], account) for account in keys}
        with anyio.fail_after(30):
            for account, copy in copies.items():
                roles = (await copy.iam.list_roles())["Roles"]
                assert {role["Arn"].split(":")[4] for role in roles} == {account}
            policy = (await copies[first].iam.list_policies(Scope="Local"))["Policies"][0]
            job = await copies[first].iam.generate_service_last_accessed_details(Arn=policy["Arn"])
            mine = await copies[first].iam.get_service_last_accessed_details(JobId=job["JobId"])
            with pytest.raises(copies[second].iam.exceptions.NoSuchEntityException):
                await copies[second].iam.get_service_last_accessed_details(JobId=job["JobId"])
    assert mine["JobStatus"] == "COMPLETED"
    # ListRoles of each account, then the first account's ListPolicies.
    assert signed.keys == [keys[first].access_key, keys[second].access_key, keys[first].access_key]


async def test_copies_of_many_accounts_share_one_connection(org: Organization) -> None:
    """Sequential calls of three accounts' copies reuse one keep-alive connection: one pool for
    every account, where a client per account opened a connection per account."""
    accounts = [account.id for account in org.accounts]
    with counting_forwarder(org.endpoint) as forwarded:
        async for iam in template(forwarded.endpoint):
            shared = SharedIam(iam)
            copies = [
                await account_iam(shared, keys_of(org, account), account)
                for account in members(org)
            ]
            with anyio.fail_after(30):
                for _ in range(3):
                    for copy in copies:
                        await copy.iam.list_users()
    assert len(accounts) == 3
    assert forwarded.connections == 1


async def test_a_request_that_bypasses_its_client_is_never_signed(org: Organization) -> None:
    """A request reaching the shared emitter without its client's signer (any path but the
    client's own call) raises instead of going out unsigned or under another account's keys."""
    async for iam in template(org.endpoint):
        copy: Any = SharedIam(iam).client(keys_of(org, members(org)[0]))
        operation = copy.meta.service_model.operation_model("ListUsers")
        request = copy._serializer.serialize_to_request({}, operation)
        prepare_request_dict(request, endpoint_url=org.endpoint, context={})
        with anyio.fail_after(30), pytest.raises(SigningError):
            await copy._endpoint.make_request(operation, request)


@pytest.mark.parametrize("fast", [True, False])
async def test_a_copy_never_calls_through_the_templates_report_calls(
    org: Organization, fast: bool
) -> None:
    """The run's template is set up like any client (its report calls on the short path), but
    makes no call: a copy builds report calls of its own that sign with its account's keys
    (never the template's, which hold the caller's), or keeps aiobotocore's methods when
    `fast_report_calls` is off."""
    settings = Settings(endpoint_url=org.endpoint, fast_report_calls=fast)
    member = members(org)[0]
    keys = keys_of(org, member)
    async with shared_iam(settings, AioSession()) as shared:
        copy = await account_iam(shared, keys, member)
        assert copy.report_calls == ("short" if fast else "aiobotocore")
        for method in REPORT_METHODS.values():
            call = getattr(copy.iam, method)
            if fast:
                assert isinstance(call, ReportCall)
                assert call._credentials is keys
            else:
                assert not isinstance(call, ReportCall)
