"""The project's exception types; the AWS boundary translates botocore errors into these."""


class CollectorError(Exception):
    """Base of every error the collector raises on purpose."""


class ConfigError(CollectorError):
    """Bad configuration or command-line input (exit code 2)."""


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
    """No usable AWS credentials, or the endpoint cannot be reached (exit code 3)."""


class AwsUnavailableError(CredentialsError):
    """An operation keeps failing for every caller: the endpoint is down for it (exit code 3)."""


class OutputError(CollectorError):
    """The output cannot be created or written (exit code 4)."""


class OutputLockedError(OutputError):
    """Another sweep is writing the same output (exit code 5)."""


class OrganizationError(AwsError):
    """The organisation cannot be listed: access denied, or not in an organisation (exit 3)."""

    def __init__(self, operation: str, code: str, message: str, hint: str = "") -> None:
        super().__init__(operation, code, message)
        if hint:
            self.args = (f"organizations:{self.args[0]}; {hint}",)


class AssumeRoleError(AwsError):
    """sts:AssumeRole into one account failed; the org run records it and goes on."""

    def __init__(self, account_id: str, role_arn: str, code: str, message: str) -> None:
        super().__init__("AssumeRole", code, message)
        self.account_id = account_id
        self.role_arn = role_arn


class ManifestError(CollectorError):
    """Shard manifests that do not add up to one complete org manifest (exit 1)."""
