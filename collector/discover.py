"""Discovery stage: list one kind of principal with its List* paginator and send each one on."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

from anyio.abc import ObjectSendStream

from collector.aws import AwsApi
from collector.config import DiscoverySettings
from collector.models import Counters, Principal, PrincipalType

# kind -> (operation, result key, name key, id key)
_LISTINGS: dict[PrincipalType, tuple[str, str, str, str]] = {
    "user": ("ListUsers", "Users", "UserName", "UserId"),
    "group": ("ListGroups", "Groups", "GroupName", "GroupId"),
    "role": ("ListRoles", "Roles", "RoleName", "RoleId"),
    "policy": ("ListPolicies", "Policies", "PolicyName", "PolicyId"),
}


def wanted(settings: DiscoverySettings, name: str, arn: str) -> bool:
    """Whether the name/ARN filters of the settings keep this principal."""
    if settings.arns and arn not in settings.arns:
        return False
    if settings.include and not any(fnmatchcase(name, glob) for glob in settings.include):
        return False
    return not any(fnmatchcase(name, glob) for glob in settings.exclude)


def _scopes(kind: PrincipalType, settings: DiscoverySettings) -> list[dict[str, Any]]:
    """The List* parameter sets for one kind: policies are listed once per scope."""
    base: dict[str, Any] = {"PathPrefix": settings.path_prefix, "MaxItems": 1000}
    if kind != "policy":
        return [base]
    scopes = [base | {"Scope": "Local"}]
    if settings.aws_managed_policies:
        scopes.append(base | {"Scope": "AWS", "OnlyAttached": True})
    return scopes


def _principal(kind: PrincipalType, item: Mapping[str, Any]) -> Principal:
    _, _, name_key, id_key = _LISTINGS[kind]
    return Principal(
        arn=item["Arn"],
        type=kind,
        name=item[name_key],
        id=item[id_key],
        path=item.get("Path", "/"),
    )


async def run(
    api: AwsApi,
    kind: PrincipalType,
    settings: DiscoverySettings,
    skip: frozenset[str],
    counters: Counters,
    send: ObjectSendStream[Principal],
) -> None:
    """List every principal of `kind`, page by page, and send the wanted ones downstream."""
    operation, result_key, name_key, _ = _LISTINGS[kind]
    async with send:
        for params in _scopes(kind, settings):
            async for page in api.pages(operation, **params):
                for item in page.get(result_key, []):
                    if item["Arn"] in skip or not wanted(settings, item[name_key], item["Arn"]):
                        continue
                    counters.principals_found += 1
                    await send.send(_principal(kind, item))
