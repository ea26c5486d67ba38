"""The organisation's checks: listing its accounts as the sweep does, then AssumeRole into a
sample of the member accounts and each IAM call of a sweep there."""

from __future__ import annotations

from typing import Any

from aiobotocore.session import AioSession

from collector.aws.clients import client_config, open_clients
from collector.check.account import Identity, check_caller, iam_rows, identity
from collector.check.rows import Result, Row
from collector.config.settings import Settings
from collector.errors import AssumeRoleError, CollectorError, OrganizationError
from collector.org.credentials import account_session
from collector.org.listing import AccountListing, list_accounts, pages
from collector.org.sweep import assume_settings, selection

# The Organizations calls a listing makes, in order, by source.
LISTING_CALLS = {
    "org": ("DescribeOrganization", "ListAccounts"),
    "ou": ("DescribeOrganization", "ListAccountsForParent", "ListChildren"),
}
# botocore's names for a connection that never happened or broke off.
UNREACHABLE = frozenset(
    {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ConnectionClosedError"}
)
SESSION_RUN_ID = "check"  # the role session is named collector-check (the default template)


def _result(code: str) -> Result:
    if code in UNREACHABLE:
        return "unreachable"
    return "denied" if "AccessDenied" in code else "failed"


async def listing_rows(
    settings: Settings, base: AioSession, who: Identity
) -> tuple[list[Row], AccountListing | None]:
    """The Organizations calls of the listing, one row each; the listing when it worked."""
    chosen = selection(settings)
    where = f"account {who.account_id}"
    if chosen.accounts:
        listing = await list_accounts(chosen, None)
        note = "--accounts names the accounts: the sweep makes no Organizations call"
        return [Row("organizations:*", "none", where, "skipped", note)], listing
    calls = LISTING_CALLS["org" if chosen.org else "ou"]
    if settings.org_access_report:
        calls = (*calls, "ListRoots")
    async with base.create_client(
        "organizations",
        region_name=settings.region,
        endpoint_url=settings.endpoint_url,
        config=client_config(),
    ) as client:
        try:
            listing = await list_accounts(chosen, client)
            roots = await _roots(client) if settings.org_access_report else 0
        except OrganizationError as error:
            return _refused(calls, error, where, who), None
        except CollectorError as error:  # no credentials
            return [Row(f"organizations:{calls[0]}", calls[0], where, "failed", str(error))], None
    found = f"{len(listing.accounts)} accounts listed, {len(listing.to_sweep)} active"
    rows = [Row(f"organizations:{name}", name, where, "ok", found) for name in calls]
    if settings.org_access_report:
        rows[-1] = Row("organizations:ListRoots", "ListRoots", where, "ok", f"{roots} root(s)")
    return rows, listing


async def _roots(client: Any) -> int:
    """organizations:ListRoots, which the organizations access report walks from."""
    return len([root async for root in pages(client, "ListRoots", "Roots")])


def _refused(
    calls: tuple[str, ...], error: OrganizationError, where: str, who: Identity
) -> list[Row]:
    """The calls before the refused one worked; those after it were never made."""
    operation = error.operation
    order = calls
    if operation not in order:
        action = f"organizations:{operation}"
        return [Row(action, operation, where, _result(error.code), error.message)]
    rows = [
        Row(f"organizations:{name}", name, where, "ok", "allowed")
        for name in order[: order.index(operation)]
    ]
    result = _result(error.code)
    fix = ""
    if result == "denied":
        fix = (
            f"add organizations:{operation} to {who.principal} (which must be in the "
            "management account or a delegated administrator)"
        )
    detail = f"{error.code}: {error.message}"
    rows.append(Row(f"organizations:{operation}", operation, where, result, detail, fix))
    rows += [
        Row(f"organizations:{name}", name, where, "skipped", f"not reached: {operation} failed")
        for name in order[order.index(operation) + 1 :]
    ]
    return rows


async def member_rows(
    settings: Settings,
    base: AioSession,
    who: Identity,
    listing: AccountListing,
    sample: int,
) -> tuple[list[Row], tuple[str, ...], int]:
    """AssumeRole into the first `sample` member accounts (by id), and each sweep call there."""
    members = [account.id for account in listing.to_sweep if account.id != who.account_id]
    sampled = tuple(members[:sample])
    assume = assume_settings(settings)
    rows: list[Row] = []
    for account_id in sampled:
        role = assume.role_arn(account_id, who.partition)
        where = f"account {account_id}"
        try:
            session = await account_session(
                base, account_id, caller_account=who.account_id, settings=assume,
                run_id=SESSION_RUN_ID,
            )  # fmt: skip
        except AssumeRoleError as error:
            rows.append(_assume_refused(error, role, where, who, assume.external_id))
            continue
        except CollectorError as error:
            rows.append(Row("sts:AssumeRole", f"AssumeRole({role})", where, "failed", str(error)))
            continue
        rows.append(Row("sts:AssumeRole", f"AssumeRole({role})", where, "ok", who.principal))
        as_role = f"account {account_id} as role {settings.org.role_name}"
        async with open_clients(settings, session=session) as clients:
            caller = check_caller(settings)
            row, member = await identity(clients.sts, caller, as_role)
            rows.append(row)
            if member is not None:
                rows += await iam_rows(
                    clients.iam, caller, settings, Identity(account_id, role), as_role
                )
    return rows, sampled, len(members)


def _assume_refused(
    error: AssumeRoleError, role: str, where: str, who: Identity, external_id: str | None
) -> Row:
    result = _result(error.code)
    fix = ""
    if result == "denied":
        trust = f"trusts {who.principal}"
        if external_id is not None:
            trust += f" with sts:ExternalId {external_id}"
        fix = (
            f"allow sts:AssumeRole on {role} to {who.principal}, and make sure {role} exists "
            f"and {trust} (deploy/cloudformation/member-role.yaml)"
        )
    detail = f"{error.code}: {error.message}"
    return Row("sts:AssumeRole", f"AssumeRole({role})", where, result, detail, fix)
