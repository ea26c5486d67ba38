"""Account selection against a real moto Organizations server: listing, OU walk, filters, errors."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest
from moto.organizations.models import organizations_backends

from collector.errors import ConfigError, OrganizationError
from collector.org.listing import (
    Account,
    AccountSelection,
    list_accounts,
    parse_account_list,
    read_account_file,
)
from collector.org.manifest import AccountEntry, Manifest, merge, unswept_entry, write_manifest
from collector.org.shard import Shard
from tests.support.moto_org import MANAGEMENT, MotoOrg, add_user, allow, build_org, moto_server


@pytest.fixture
def moto() -> Iterator[MotoOrg]:
    with moto_server() as org:
        yield org


@pytest.fixture
async def org(moto: MotoOrg) -> MotoOrg:
    with anyio.fail_after(30):
        await build_org(moto)
    return moto


async def listing(org: MotoOrg, selection: AccountSelection, **keys: str):  # type: ignore[no-untyped-def]
    with anyio.fail_after(30):
        async with org.client("organizations", **keys) as client:
            return await list_accounts(selection, client)


async def test_org_lists_every_account_sorted_with_state(org: MotoOrg) -> None:
    """--org: every account with name and State; SUSPENDED is reported, not swept."""
    found = await listing(org, AccountSelection(org=True))
    ids = org.accounts
    assert found.organization_id == org.org_id
    assert [a.id for a in found.accounts] == sorted(ids.values())
    assert {a.id: a.name for a in found.accounts}[ids["web"]] == "web"
    assert [a.id for a in found.not_swept] == [ids["closed"]]
    assert found.not_swept[0].state == "SUSPENDED"
    assert sorted(a.id for a in found.to_sweep) == sorted(
        v for k, v in ids.items() if k != "closed"
    )
    assert all(a.path is None for a in found.accounts)  # ListAccounts does not say where


async def test_pending_closure_accounts_are_reported_not_swept(org: MotoOrg) -> None:
    """An account on its way out (PENDING_CLOSURE) is not swept either."""
    backend = organizations_backends[MANAGEMENT]["aws"]
    (account,) = [a for a in backend.accounts if a.id == org.accounts["sandbox"]]
    account.state = "PENDING_CLOSURE"
    account.status = "ACTIVE"  # the deprecated Status field is not looked at
    found = await listing(org, AccountSelection(org=True))
    assert {a.id: a.state for a in found.not_swept} == {
        org.accounts["sandbox"]: "PENDING_CLOSURE",
        org.accounts["closed"]: "SUSPENDED",
    }


async def test_org_listing_follows_every_page(moto: MotoOrg) -> None:
    """More accounts than one page (20) holds: none is lost."""
    async with moto.client("organizations") as client:
        await client.create_organization(FeatureSet="ALL")
        made = {MANAGEMENT}
        for n in range(44):
            status = await client.create_account(Email=f"a{n}@example.com", AccountName=f"a{n}")
            made.add(status["CreateAccountStatus"]["AccountId"])
    found = await listing(moto, AccountSelection(org=True))
    assert [a.id for a in found.accounts] == sorted(made)


async def test_ou_walk_is_recursive_and_records_the_path(org: MotoOrg) -> None:
    """--ou prod finds prod's accounts and those of OUs below it, with the OU path."""
    ous, ids = org.ous, org.accounts
    found = await listing(org, AccountSelection(ous=(ous["prod"],)))
    assert found.organization_id == org.org_id
    assert {a.id: a.path for a in found.accounts} == {
        ids["web"]: (ous["prod"],),
        ids["api"]: (ous["prod"], ous["prod-eu"]),
    }


async def test_walk_from_the_root_covers_the_org(org: MotoOrg) -> None:
    """--ou r-… walks the whole organisation, each account with its path from the root."""
    found = await listing(org, AccountSelection(ous=(org.root,)))
    assert [a.id for a in found.accounts] == sorted(org.accounts.values())
    paths = {a.id: a.path for a in found.accounts}
    assert paths[org.accounts["management"]] == (org.root,)
    assert paths[org.accounts["closed"]] == (org.root, org.ous["dev"])
    assert [a.state for a in found.not_swept] == ["SUSPENDED"]


async def test_overlapping_ous_give_each_account_once(org: MotoOrg) -> None:
    """Naming an OU and one inside it (or twice) does not duplicate accounts."""
    ous = org.ous
    found = await listing(org, AccountSelection(ous=(ous["prod-eu"], ous["prod"], ous["prod"])))
    assert sorted(a.id for a in found.accounts) == sorted(
        (org.accounts["web"], org.accounts["api"])
    )


async def test_include_and_exclude_filter_the_listing(org: MotoOrg) -> None:
    """Excluded accounts are kept aside; an included id the org lacks is reported missing."""
    ids = org.accounts
    found = await listing(
        org,
        AccountSelection(
            org=True,
            include=frozenset({ids["web"], ids["api"], "999999999999"}),
            exclude=frozenset({ids["api"]}),
        ),
    )
    assert [a.id for a in found.accounts] == [ids["web"]]
    assert sorted(a.id for a in found.excluded) == sorted(v for k, v in ids.items() if k != "web")
    assert found.missing == ("999999999999",)


async def test_explicit_list_needs_no_organizations_access() -> None:
    """--accounts makes no call: no client, no org id, accounts without name or state."""
    selection = AccountSelection(
        accounts=("222222222222", "111111111111"), exclude=frozenset({"222222222222"})
    )
    found = await list_accounts(selection, None)
    assert found.organization_id is None
    assert found.accounts == (Account("111111111111"),)
    assert found.to_sweep == found.accounts
    assert found.excluded == (Account("222222222222"),)


async def test_select_keeps_one_shards_part(org: MotoOrg) -> None:
    """Shards of a listing partition it, swept and not-swept accounts alike."""
    found = await listing(org, AccountSelection(org=True))
    parts = [found.select(Shard(i, 3).owns) for i in range(3)]
    assert sorted(a.id for p in parts for a in p.accounts) == [a.id for a in found.accounts]
    assert sum(len(p.not_swept) for p in parts) == 1
    assert all(p.organization_id == org.org_id for p in parts)


async def test_not_in_an_organisation_is_an_organization_error(moto: MotoOrg) -> None:
    """Credentials of an account outside any organisation: OrganizationError (exit 3)."""
    with pytest.raises(OrganizationError) as caught:
        await listing(moto, AccountSelection(org=True))
    assert caught.value.code == "AWSOrganizationsNotInUseException"
    assert "\n" not in str(caught.value)


async def test_access_denied_is_an_organization_error(org: MotoOrg) -> None:
    """A principal without organizations:* permissions cannot list: OrganizationError."""
    keys = await add_user(org, "nobody", None)
    with org.enforcing_iam(), pytest.raises(OrganizationError) as caught:
        await listing(org, AccountSelection(org=True), **keys)
    assert caught.value.code == "AccessDenied"
    assert caught.value.operation == "DescribeOrganization"
    assert "management account or a delegated administrator" in str(caught.value)
    assert "\n" not in str(caught.value)


async def test_listing_denied_after_describe_is_an_organization_error(org: MotoOrg) -> None:
    """DescribeOrganization allowed but ListAccounts denied: still OrganizationError."""
    keys = await add_user(org, "member-like", allow("organizations:DescribeOrganization"))
    with org.enforcing_iam(), pytest.raises(OrganizationError) as caught:
        await listing(org, AccountSelection(org=True), **keys)
    assert caught.value.operation == "ListAccounts"
    assert caught.value.code == "AccessDenied"


async def test_unknown_ou_is_a_usage_error(org: MotoOrg) -> None:
    """A well-formed OU id the organisation does not have: ConfigError naming it."""
    missing = "ou-zzzz-zzzzzzzz"
    with pytest.raises(ConfigError, match=missing):
        await listing(org, AccountSelection(ous=(missing,)))


@pytest.mark.parametrize(
    ("selection", "fragment"),
    [
        ({}, "choose exactly one of --org, --ou or --accounts"),
        ({"org": True, "accounts": ("111111111111",)}, "(got --org, --accounts)"),
        ({"ous": ("ou-12",)}, "--ou 'ou-12' is not an OU id"),
        ({"ous": ("OU-ABCD-12345678",)}, "is not an OU id"),
        ({"ous": ("r-",)}, "--ou 'r-' is not"),
        ({"accounts": ("12345678901",)}, "--accounts: '12345678901' is not a 12-digit"),
        ({"org": True, "exclude": frozenset({"abc"})}, "--exclude-accounts: 'abc'"),
        ({"org": True, "include": frozenset({"1" * 13})}, "--include-accounts"),
    ],
)
def test_bad_selection_is_one_config_error_line(
    selection: dict[str, object], fragment: str
) -> None:
    """Every malformed id or combination is a ConfigError naming the value."""
    with pytest.raises(ConfigError) as caught:
        AccountSelection(**selection)  # type: ignore[arg-type]
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)


def test_good_ou_and_root_ids_are_accepted() -> None:
    """Real-looking OU and root ids pass validation."""
    selection = AccountSelection(ous=("ou-ab12-abcdefgh", "r-ab12", "ou-abcd-1234567890ab"))
    assert len(selection.ous) == 3


def test_account_list_parsing() -> None:
    """Comma lists: spaces ignored, duplicates dropped, order kept; bad ids named."""
    assert parse_account_list("222222222222, 111111111111,222222222222") == (
        "222222222222",
        "111111111111",
    )
    with pytest.raises(ConfigError, match="'11111111111x'"):
        parse_account_list("111111111111,11111111111x")
    with pytest.raises(ConfigError, match="no account ids"):
        parse_account_list(" , ")


def test_account_file_allows_comments_and_blank_lines(tmp_path: Path) -> None:
    """One id per line, `#` comments anywhere, blank lines skipped."""
    path = tmp_path / "ids.txt"
    path.write_text("# prod\n111111111111\n\n222222222222  # payments\n111111111111\n")
    assert read_account_file(path) == ("111111111111", "222222222222")


def test_account_file_errors_name_file_and_line(tmp_path: Path) -> None:
    """A bad line names the file and line number; a missing or empty file is one line too."""
    path = tmp_path / "ids.txt"
    path.write_text("111111111111\n22222\n")
    with pytest.raises(ConfigError, match=r"ids.txt:2: '22222'"):
        read_account_file(path)
    with pytest.raises(ConfigError, match="cannot read"):
        read_account_file(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    with pytest.raises(ConfigError, match="names no account ids"):
        read_account_file(tmp_path / "empty.txt")


async def test_shard_manifests_of_a_listing_merge_complete(org: MotoOrg, tmp_path: Path) -> None:
    """The leaves compose: list the org, split it in 3 shards, one manifest each, merge."""
    found = await listing(
        org, AccountSelection(org=True, exclude=frozenset({org.accounts["loose"]}))
    )
    paths = []
    for index in range(3):
        part = found.select(Shard(index, 3).owns)
        assert part.listed == found.listed  # every shard knows the whole listing
        entries = [
            *(AccountEntry(a.id, "complete", a.name, a.state) for a in part.to_sweep),
            *(unswept_entry(a) for a in part.not_swept),
            *(unswept_entry(a, excluded=True) for a in part.excluded),
        ]
        manifest = Manifest(
            run_id="2026-11-23",
            organization_id=found.organization_id,
            started=datetime.now(UTC),
            finished=datetime.now(UTC),
            accounts=tuple(entries),
            listed_accounts=part.listed,
            shard=Shard(index, 3),
        )
        paths.append(tmp_path / f"manifest-{index}.json")
        write_manifest(manifest, paths[-1])
    merged = merge(paths, tmp_path / "manifest.json", expect_shards=3)
    assert [e.account_id for e in merged.accounts] == sorted(org.accounts.values())
    assert merged.outcomes() == {"complete": 4, "suspended": 1, "excluded": 1}
