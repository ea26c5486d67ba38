"""Discovery stage: list one kind of principal, page by page, and send the wanted ones on."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from anyio.abc import ObjectSendStream

from collector.config.settings import DiscoverySettings
from collector.models import Principal, PrincipalType
from collector.sweep.env import StageEnv


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


async def list_principals(
    env: StageEnv, kind: PrincipalType, skip: frozenset[str], send: ObjectSendStream[Principal]
) -> None:
    """Send every wanted principal of `kind` not in `skip` (already complete in a resumed file)."""
    async with send:
        for params in _scopes(kind, env.discovery):
            async for page in env.api.principals(kind, params):
                for principal in page:
                    if principal.arn in skip or not wanted(
                        env.discovery, principal.name, principal.arn
                    ):
                        continue
                    env.counters.principals_found += 1
                    await send.send(principal)
