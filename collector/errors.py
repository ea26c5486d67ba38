"""The project's exception types, each with its exit code; AWS errors are translated into these."""

from typing import ClassVar

EXIT_OK = 0
EXIT_PARTIAL = 1  # some principal or account is missing: error records, a failed account
EXIT_USAGE = 2
EXIT_AWS = 3
EXIT_OUTPUT = 4
EXIT_LOCKED = 5  # another sweep is writing the same output
EXIT_SIGNAL_BASE = 128  # 130 after SIGINT, 143 after SIGTERM, as shells report them


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""

    exit_code: ClassVar[int] = EXIT_PARTIAL


class ConfigError(CollectorError):
    """Bad configuration or command-line input."""

    exit_code = EXIT_USAGE


class AwsError(CollectorError):
    """An AWS call failed with an error code that is not retried."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code
        self.message = message


class NoSuchEntityError(AwsError):
    """The principal or the JobId does not exist (any more)."""


class AccessDeniedError(AwsError):
    """The caller's credentials are not allowed to make the call."""


class RetriesExhaustedError(AwsError):
    """A throttled or transient failure kept happening past the retry budget."""


class CredentialsError(CollectorError):
    """No usable AWS credentials, or the endpoint cannot be reached."""

    exit_code = EXIT_AWS


class AwsUnavailableError(CollectorError):
    """An operation keeps failing for every caller: the endpoint is down for it."""

    exit_code = EXIT_AWS


class DiscoveryError(CollectorError):
    """Listing principals was denied or kept failing: nothing complete can be produced."""

    exit_code = EXIT_AWS


class OutputError(CollectorError):
    """The output cannot be created or written."""

    exit_code = EXIT_OUTPUT


class OutputLockedError(OutputError):
    """Another sweep is writing the same output."""

    exit_code = EXIT_LOCKED


class S3Error(OutputError):
    """S3 refused a call on the output: `code` is S3's error code (NoSuchKey, AccessDenied...)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class OutputUnreachableError(OutputError):
    """The output's endpoint cannot be reached, or does not take the credentials: an AWS
    problem (exit 3), though it happens while writing output."""

    exit_code = EXIT_AWS


class OrganizationError(AwsError):
    """The organisation cannot be listed: access denied, or not in an organisation."""

    exit_code = EXIT_AWS

    def __init__(self, operation: str, code: str, message: str, hint: str = "") -> None:
        super().__init__(operation, code, message)
        if hint:
            self.args = (f"organizations:{self.args[0]}; {hint}",)


# AssumeRole answers that mean "not allowed" (the role is missing, does not trust the caller,
# or the account is closed); any other failure (a 5xx, a timeout, a malformed answer) is not.
DENIED_CODES = frozenset({"AccessDenied", "AccessDeniedException"})


class AssumeRoleError(AwsError):
    """sts:AssumeRole into one account failed; the org run records it and goes on."""

    def __init__(self, account_id: str, role_arn: str, code: str, message: str) -> None:
        super().__init__("AssumeRole", code, message)
        self.account_id = account_id
        self.role_arn = role_arn

    @property
    def denied(self) -> bool:
        """AWS refused the role (the account's outcome is `assume_role_denied`, not `failed`)."""
        return self.code in DENIED_CODES


class CredentialRefreshError(CollectorError):
    """An account's assumed-role credentials ran out and could not be renewed: its sweep stops.

    Not an AwsError on purpose: it is no principal's failure, so no stage turns it into an
    error record; it ends the account's sweep, which the org run records as `failed`.
    """

    exit_code = EXIT_AWS

    def __init__(self, account_id: str, code: str, message: str) -> None:
        super().__init__(
            f"the credentials for account {account_id} expired and AssumeRole could not renew "
            f"them: {code}: {message}"
        )
        self.account_id = account_id
        self.code = code
        self.message = message


class ManifestError(CollectorError):
    """Shard manifests that do not add up to one complete org manifest."""


def first_collector_error(error: BaseException) -> CollectorError | None:
    """The first CollectorError in an exception (group) tree, if any."""
    if isinstance(error, CollectorError):
        return error
    if isinstance(error, BaseExceptionGroup):
        for inner in error.exceptions:
            found = first_collector_error(inner)
            if found is not None:
                return found
    return None
