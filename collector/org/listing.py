"""Which accounts an org run sweeps: the organisation, some OUs, or an explicit list."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore import xform_name
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from collector.errors import ConfigError, CredentialsError, OrganizationError

if TYPE_CHECKING:
    from types_aiobotocore_organizations import OrganizationsClient

ACCOUNT_ID = re.compile(r"[0-9]{12}")  # ASCII digits: `\d` takes any Unicode digit
OU_ID = re.compile(r"ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}")
ROOT_ID = re.compile(r"r-[0-9a-z]{4,32}")
ACTIVE = "ACTIVE"
HINT = (
    "list accounts from the management account or a delegated administrator "
    "(organizations:ListAccounts, ListChildren, ListAccountsForParent, DescribeOrganization), "
    "or name them with --accounts"
)


@dataclass(frozen=True, slots=True)
class Account:
    """One account: `state` is Organizations' State (None when named explicitly, not listed)."""

    id: str
    name: str | None = None
    state: str | None = None
    # Root/OU ids from where the walk started down to the account's parent; None when unknown.
    path: tuple[str, ...] | None = None

    @property
    def active(self) -> bool:
        """Only ACTIVE accounts (or explicitly named ones) are swept."""
        return self.state in (None, ACTIVE)


@dataclass(frozen=True, slots=True)
class AccountSelection:
    """Exactly one source (`org`, `ous` or `accounts`) plus include/exclude filters."""

    org: bool = False
    ous: tuple[str, ...] = ()
    accounts: tuple[str, ...] = ()
    include: frozenset[str] = frozenset()
    exclude: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        sources = [name for name, on in (("--org", self.org), ("--ou", self.ous),
                                         ("--accounts", self.accounts)) if on]  # fmt: skip
        if len(sources) != 1:
            raise ConfigError(
                "choose exactly one of --org, --ou or --accounts"
                + (f" (got {', '.join(sources)})" if sources else "")
            )
        for ou in self.ous:
            if OU_ID.fullmatch(ou) is None and ROOT_ID.fullmatch(ou) is None:
                raise ConfigError(
                    f"--ou {ou!r} is not an OU id (ou-xxxx-xxxxxxxx) or a root id (r-xxxx)"
                )
        for flag, ids in (
            ("--accounts", self.accounts),
            ("--include-accounts", self.include),
            ("--exclude-accounts", self.exclude),
        ):
            for account_id in sorted(ids):
                check_account_id(account_id, flag)


@dataclass(frozen=True, slots=True)
class AccountListing:
    """What the selection found: accounts to report on (sorted by id) and the filtered-out."""

    organization_id: str | None
    accounts: tuple[Account, ...]
    excluded: tuple[Account, ...] = ()  # listed, removed by --include/--exclude-accounts
    missing: tuple[str, ...] = ()  # --include-accounts ids the listing did not return
    # Every id listed (swept or not, excluded too), kept whole by select(): the manifest's
    # listed_accounts, which lets `manifest merge` prove the shards cover the organisation.
    listed: tuple[str, ...] = ()

    @property
    def to_sweep(self) -> tuple[Account, ...]:
        return tuple(account for account in self.accounts if account.active)

    @property
    def not_swept(self) -> tuple[Account, ...]:
        """Listed but not ACTIVE (SUSPENDED, PENDING_CLOSURE, ...): reported with their state."""
        return tuple(account for account in self.accounts if not account.active)

    def select(self, owns: Callable[[str], bool]) -> AccountListing:
        """The part of the listing one shard reports on (`Shard.owns`)."""
        return replace(
            self,
            accounts=tuple(a for a in self.accounts if owns(a.id)),
            excluded=tuple(a for a in self.excluded if owns(a.id)),
        )


def check_account_id(account_id: str, flag: str = "--accounts") -> str:
    """The id itself, or a ConfigError naming the bad value."""
    if ACCOUNT_ID.fullmatch(account_id) is None:
        raise ConfigError(f"{flag}: {account_id!r} is not a 12-digit AWS account id")
    return account_id


def parse_account_list(text: str, flag: str = "--accounts") -> tuple[str, ...]:
    """`111111111111,222222222222` (spaces allowed) -> unique ids in the order given."""
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise ConfigError(f"{flag}: no account ids in {text!r}")
    return tuple(dict.fromkeys(check_account_id(i, flag) for i in ids))


def read_account_file(path: Path, flag: str = "--accounts-file") -> tuple[str, ...]:
    """One id per line; blank lines and `#` comments (whole-line or trailing) are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{flag}: cannot read {path}: {error}") from error
    ids: list[str] = []
    for number, line in enumerate(lines, 1):
        value = line.split("#", 1)[0].strip()
        if value and ACCOUNT_ID.fullmatch(value) is None:
            raise ConfigError(f"{flag}: {path}:{number}: {value!r} is not a 12-digit account id")
        if value:
            ids.append(value)
    if not ids:
        raise ConfigError(f"{flag}: {path} names no account ids")
    return tuple(dict.fromkeys(ids))


def _one_line(message: str) -> str:
    return " ".join(message.split())[:300]


def _translate(operation: str, error: Exception) -> Exception:
    """Organizations errors into the project's: usage, credentials, or cannot-list (exit 3)."""
    if isinstance(error, NoCredentialsError):
        return CredentialsError("no AWS credentials found for organizations:" + operation)
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        code = str(details.get("Code", "Unknown"))
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code == "403" or status == 403:
            code = "AccessDenied"  # a 403 without a parsable code is still a denial
        return OrganizationError(operation, code, _one_line(str(details.get("Message", ""))), HINT)
    return OrganizationError(operation, type(error).__name__, _one_line(str(error)), HINT)


async def pages(
    client: OrganizationsClient, operation: str, key: str, **params: Any
) -> AsyncIterator[dict[str, Any]]:
    """Items of every page; botocore's own retries handle TooManyRequestsException."""
    paginator: Any = client.get_paginator(xform_name(operation))  # type: ignore[call-overload]
    try:
        # 20 is the most these operations return per page.
        async for page in paginator.paginate(**params, PaginationConfig={"PageSize": 20}):
            for item in page.get(key, []):
                yield item
    except (ClientError, BotoCoreError) as error:
        code = error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else ""
        if code in ("ParentNotFoundException", "InvalidInputException") and "ParentId" in params:
            raise ConfigError(
                f"--ou {params['ParentId']!r}: no such OU or root in this organisation"
            ) from error
        raise _translate(operation, error) from error


async def organization_id(client: OrganizationsClient) -> str:
    """The organisation's id (o-...); OrganizationError when not in one or not allowed."""
    try:
        response = await client.describe_organization()
    except (ClientError, BotoCoreError) as error:
        raise _translate("DescribeOrganization", error) from error
    return response["Organization"]["Id"]


def _account(item: dict[str, Any], path: tuple[str, ...] | None = None) -> Account:
    account_id = item.get("Id")
    if not isinstance(account_id, str) or ACCOUNT_ID.fullmatch(account_id) is None:
        raise OrganizationError(
            "ListAccounts",
            "MalformedResponse",
            f"an account id {account_id!r:.40} is not 12 digits",
        )
    # State replaced the deprecated Status; no fallback to Status on purpose.
    return Account(id=account_id, name=item.get("Name"), state=item.get("State"), path=path)


async def _walk(client: OrganizationsClient, starts: Iterable[str]) -> list[Account]:
    """Depth-first through the OU tree below each start; an account is kept once (first path)."""
    found: dict[str, Account] = {}
    stack: list[tuple[str, tuple[str, ...]]] = [
        (start, (start,)) for start in reversed(tuple(starts))
    ]
    seen: set[str] = set()
    while stack:
        parent, path = stack.pop()
        if parent in seen:
            continue  # the same OU named twice, or inside another start
        seen.add(parent)
        async for item in pages(client, "ListAccountsForParent", "Accounts", ParentId=parent):
            found.setdefault(item["Id"], _account(item, path))
        children = [
            child["Id"]
            async for child in pages(
                client,
                "ListChildren",
                "Children",
                ParentId=parent,
                ChildType="ORGANIZATIONAL_UNIT",
            )
        ]
        stack.extend((child, (*path, child)) for child in reversed(children))
    return list(found.values())


async def list_accounts(
    selection: AccountSelection, client: OrganizationsClient | None
) -> AccountListing:
    """The accounts the selection names; `client` may be None only for an explicit list.

    An explicit list makes no Organizations call (the caller may have no access to it), so
    its accounts have no name or state and the organisation id is None.
    """
    if selection.accounts:
        listed = [Account(id=account_id) for account_id in selection.accounts]
        org_id = None
    else:
        if client is None:
            raise ValueError("listing an organisation needs an Organizations client")
        org_id = await organization_id(client)
        if selection.org:
            listed = [_account(item) async for item in pages(client, "ListAccounts", "Accounts")]
        else:
            listed = await _walk(client, selection.ous)
    unique = {account.id: account for account in reversed(listed)}  # first occurrence wins
    ordered = sorted(unique.values(), key=lambda account: account.id)

    def wanted(account: Account) -> bool:
        if selection.include and account.id not in selection.include:
            return False
        return account.id not in selection.exclude

    return AccountListing(
        organization_id=org_id,
        accounts=tuple(a for a in ordered if wanted(a)),
        excluded=tuple(a for a in ordered if not wanted(a)),
        missing=tuple(sorted(selection.include - unique.keys())),
        listed=tuple(account.id for account in ordered),
    )
