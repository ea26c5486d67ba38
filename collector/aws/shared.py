"""One IAM client for many accounts: copies that share its pool and events, each with own keys."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiobotocore.signers import AioRequestSigner

if TYPE_CHECKING:
    from types_aiobotocore_iam import IAMClient
else:
    IAMClient = Any

# Where a call's own signer travels from `before-call` to `request-created` (the request's
# context is the call's).
SIGNER = "collector.request_signer"


class SigningError(RuntimeError):
    """A request reached the shared emitter without its client's signer: never sent unsigned
    or signed with another account's keys."""


class SharedIam:
    """An open IAM client (the template) and copies of it that act in other accounts.

    Creating a client copies the session's whole event emitter, builds a client class and an
    endpoint resolver, and opens a connection pool: about half of what an account cost an
    organisation sweep, though every account talks to the same IAM endpoint. A copy shares all
    of that with the template (one session, loader, emitter, connection pool, parser, endpoint
    resolution per operation) and differs only in its request signer, which holds the
    account's credentials.

    botocore signs in a `request-created` handler bound to the client's signer; on an emitter
    that copies share, that handler would sign every account's calls with the template's keys.
    So the template's handler is replaced by one that signs with the signer of the client
    that made the call: botocore hands that signer to `before-call` handlers, which put it in
    the call's context, and the request carries that context to `request-created`.

    The template itself is never used for calls; closing it closes the shared pool, so it is
    closed only once every copy is done (the owner's `async with`).
    """

    def __init__(self, template: IAMClient, *, report_calls: str = "aiobotocore") -> None:
        client: Any = template
        self._template = client
        self.report_calls = report_calls  # the template's path for the report calls (fastpath)
        events = client.meta.events  # aiobotocore's emitter: its handlers may be async
        service_id = client.meta.service_model.service_id.hyphenize()
        signer = client._request_signer  # botocore's own; no public accessor
        events.unregister(f"request-created.{service_id}", signer.handler)
        events.register(
            f"before-call.{service_id}", _keep_signer, unique_id="collector-keep-signer"
        )
        events.register(
            f"request-created.{service_id}", _sign, unique_id="collector-sign-per-client"
        )
        self._signer = signer

    def client(self, credentials: Any) -> IAMClient:
        """A client like the template that signs with `credentials` (refreshable or not)."""
        template = self._template
        clone = object.__new__(type(template))
        clone.__dict__.update(vars(template))
        signer = self._signer
        clone._request_signer = AioRequestSigner(
            template.meta.service_model.service_id,
            signer.region_name,
            signer.signing_name,
            signer.signature_version,
            credentials,
            template.meta.events,
        )
        result: IAMClient = clone
        return result


def _keep_signer(request_signer: Any, context: dict[str, Any], **_: Any) -> None:
    """before-call: the calling client's signer into the call's context (returns None: a value
    here would be taken as the call's response)."""
    context[SIGNER] = request_signer


async def _sign(request: Any, operation_name: str, **kwargs: Any) -> None:
    """request-created: sign with the signer of the client that made the call."""
    signer = request.context.get(SIGNER)
    if signer is None:
        raise SigningError(f"{operation_name}: no signer in the request's context")
    await signer.handler(operation_name=operation_name, request=request, **kwargs)
