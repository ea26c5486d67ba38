"""The WSGI middleware in front of moto's server: faults and model validation for every IAM
call, the three Access Advisor operations moto lacks, List calls and GetAccountAuthorizationDetails
paged as IAM pages them, and the caller's identity; everything else goes through to moto."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

from collector.emulator import wire
from collector.emulator.authdetails import OPERATION as AUTHORIZATION_DETAILS
from collector.emulator.authdetails import AuthorizationDetails
from collector.emulator.faults import FaultInjector
from collector.emulator.identity import caller_arn, get_caller_identity
from collector.emulator.listing import LISTS, Listings
from collector.emulator.operations import OPERATIONS, AccessAdvisor
from collector.emulator.s3ops import s3_operation
from collector.emulator.stats import MARKER_SUFFIX, SERVED, ServedCalls
from collector.emulator.stats import current as current_stats
from collector.emulator.validation import violation

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# IAM calls that cannot change the account; any other call passed to moto
# invalidates the emulator's snapshot of it.
_READ_PREFIXES = ("Get", "List", "Generate", "Simulate")


def signing_service(environ: dict[str, Any]) -> str | None:
    """The service in the SigV4 credential scope (`AKID/date/region/iam/aws4_request`)."""
    auth = environ.get("HTTP_AUTHORIZATION", "")
    _, _, rest = auth.partition("Credential=")
    scope = rest.split(",", 1)[0].strip().split("/")
    return scope[3].lower() if len(scope) == 5 else None


class EmulatorApp:
    """Routes one account's requests: IAM through the fault knobs, then to us or to moto."""

    def __init__(
        self,
        moto_app: WSGIApp,
        advisor: AccessAdvisor,
        injector: FaultInjector,
        account_id: str,
        stats: ServedCalls | None = None,
    ) -> None:
        self.moto_app = moto_app
        self.advisor = advisor
        self.injector = injector
        self.account_id = account_id
        self.caller_arn = caller_arn(account_id)
        self.listings = Listings(moto_app, injector)
        self.details = AuthorizationDetails(injector)
        # Per-second call counts, only when a benchmark asked for them (stats.recording).
        self.stats = stats if stats is not None else current_stats()

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        # moto keys its state by account; pin every request to this emulator's.
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account_id
        owner = environ.get("HTTP_X_AMZ_EXPECTED_BUCKET_OWNER")
        if owner is not None and owner != self.account_id and signing_service(environ) == "s3":
            # moto ignores ExpectedBucketOwner; S3 answers 403 when the bucket is someone else's.
            return _answer(start_response, 403, wire.s3_error("AccessDenied", "Access Denied"))
        if s3_denied(environ, self.injector.faults.access_denied):
            return _answer(start_response, 403, wire.s3_error("AccessDenied", "Access Denied"))
        service = signing_service(environ) if environ.get("REQUEST_METHOD") == "POST" else None
        if service == "sts":
            return self._sts(environ, start_response)
        if service != "iam":
            return self.moto_app(environ, start_response)
        params = form_params(environ)
        operation = params.get("Action", "")
        refusal = self.injector.refusal(operation, self.caller_arn)
        if self.stats is not None:
            self.stats.record(operation, SERVED if refusal is None else refusal.code)
            if refusal is None and "Marker" in params:
                # Pages after the first, counted apart too: a benchmark tells polls from pages.
                self.stats.record(operation + MARKER_SUFFIX, SERVED)
        if refusal is not None:
            return _answer(
                start_response,
                refusal.status,
                wire.error(refusal.code, refusal.message, refusal.status),
            )
        problem = violation(operation, params)
        if problem is not None:
            return _answer(start_response, 400, wire.error(problem.code, problem.message, 400))
        if operation in OPERATIONS:
            answer = self.advisor.handle(operation, params)
            return _answer(start_response, answer.status, answer.body)
        if operation == AUTHORIZATION_DETAILS:
            answer = self.details.handle(self.advisor.directory(), params)
            return _answer(start_response, answer.status, answer.body)
        if operation in LISTS:
            answer = self.listings.handle(operation, params, environ)
            return _answer(start_response, answer.status, answer.body)
        try:
            return self.moto_app(environ, start_response)
        finally:
            if not operation.startswith(_READ_PREFIXES):
                self.advisor.invalidate()
                self.listings.invalidate()

    def _sts(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """GetCallerIdentity names the caller AccessDenied names; other STS calls go to moto."""
        params = form_params(environ)
        if params.get("Action") == "GetCallerIdentity":
            if "GetCallerIdentity" in self.injector.faults.access_denied:
                message = (
                    f"User: {self.caller_arn} is not authorized to perform: sts:GetCallerIdentity"
                )
                return _answer(start_response, 403, wire.error("AccessDenied", message, 403))
            return _answer(start_response, 200, get_caller_identity(self.account_id))
        return self.moto_app(environ, start_response)


def s3_denied(environ: dict[str, Any], denied: frozenset[str]) -> bool:
    """Whether the request is an S3 operation the --access-denied knob names."""
    return bool(denied) and signing_service(environ) == "s3" and s3_operation(environ) in denied


def form_params(environ: dict[str, Any]) -> dict[str, str]:
    """The form parameters of a query-protocol POST; the body stays readable downstream."""
    body = read_body(environ)
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def read_body(environ: dict[str, Any]) -> bytes:
    """The request body, read once; the app behind (moto) gets a fresh stream of it."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body: bytes = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    return body


_REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def _answer(start_response: Callable[..., Any], status: int, body: bytes) -> list[bytes]:
    start_response(
        f"{status} {_REASONS.get(status, 'Error')}",
        [("Content-Type", "text/xml"), ("Content-Length", str(len(body)))],
    )
    return [body]
