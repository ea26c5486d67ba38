"""A moto server on 127.0.0.1 with an AWS Organization in it, for the org leaf modules' tests."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from aiobotocore.session import AioSession
from moto.server import ThreadedMotoServer

REGION = "us-east-1"
MANAGEMENT = "123456789012"  # moto's default account: the dummy keys' account
AUDIT_ROLE = "collector-audit"
# The services the tests talk to: the stubs type a client only for a literal service name.
Service = Literal["iam", "organizations", "s3", "sts"]


@dataclass
class MotoOrg:
    """The server's URL and the ids of the organisation built in it."""

    url: str
    org_id: str = ""
    root: str = ""
    ous: dict[str, str] = field(default_factory=dict)  # name -> id
    accounts: dict[str, str] = field(default_factory=dict)  # name -> id

    def client(self, service: Service, **keys: Any) -> Any:
        """A real aiobotocore client against the server (an async context manager)."""
        return AioSession().create_client(
            service, region_name=REGION, endpoint_url=self.url, **keys
        )

    def post(self, path: str, body: bytes = b"") -> None:
        """Call moto's own control API (reset, reset-auth)."""
        request = urllib.request.Request(  # noqa: S310 an http://127.0.0.1 URL
            self.url + path, data=body, method="POST", headers={"Content-Type": "text/plain"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 loopback only
            response.read()

    @contextmanager
    def enforcing_iam(self) -> Iterator[None]:
        """moto checks IAM policies on every call while inside (and stops on exit)."""
        self.post("/moto-api/reset-auth", b"0")
        try:
            yield
        finally:
            self.post("/moto-api/reset-auth", b"inf")


@contextmanager
def moto_server() -> Iterator[MotoOrg]:
    """A ThreadedMotoServer on a free port; moto's global state is reset before and after."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    org = MotoOrg(f"http://{host}:{port}")
    org.post("/moto-api/reset")
    try:
        yield org
    finally:
        org.post("/moto-api/reset")
        server.stop()


async def build_org(org: MotoOrg) -> None:
    """An organisation of 5 members below the management account:

    root ── prod ── prod-eu        root holds `loose`; prod holds `web`; prod-eu holds `api`;
         └─ dev                    dev holds `sandbox` and `closed` (suspended).
    """
    async with org.client("organizations") as client:
        created = await client.create_organization(FeatureSet="ALL")
        org.org_id = created["Organization"]["Id"]
        org.root = (await client.list_roots())["Roots"][0]["Id"]
        org.accounts["management"] = MANAGEMENT
        for name, parent in (("prod", "root"), ("prod-eu", "prod"), ("dev", "root")):
            parent_id = org.root if parent == "root" else org.ous[parent]
            unit = await client.create_organizational_unit(ParentId=parent_id, Name=name)
            org.ous[name] = unit["OrganizationalUnit"]["Id"]
        for name, ou in (
            ("loose", None),
            ("web", "prod"),
            ("api", "prod-eu"),
            ("sandbox", "dev"),
            ("closed", "dev"),
        ):
            status = await client.create_account(Email=f"{name}@example.com", AccountName=name)
            account_id = status["CreateAccountStatus"]["AccountId"]
            org.accounts[name] = account_id
            if ou is not None:
                await client.move_account(
                    AccountId=account_id, SourceParentId=org.root, DestinationParentId=org.ous[ou]
                )
        await client.close_account(AccountId=org.accounts["closed"])


async def add_user(org: MotoOrg, name: str, policy: dict[str, Any] | None) -> dict[str, str]:
    """An IAM user of the management account (optionally with an inline policy); its keys."""
    async with org.client("iam") as iam:
        await iam.create_user(UserName=name)
        if policy is not None:
            await iam.put_user_policy(
                UserName=name, PolicyName="inline", PolicyDocument=json.dumps(policy)
            )
        key = (await iam.create_access_key(UserName=name))["AccessKey"]
    return {
        "aws_access_key_id": key["AccessKeyId"],
        "aws_secret_access_key": key["SecretAccessKey"],
    }


def allow(*actions: str) -> dict[str, Any]:
    """An identity policy allowing the actions on every resource."""
    return {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": list(actions), "Resource": "*"}],
    }
