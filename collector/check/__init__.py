"""`collector check`: each permission, role and bucket a sweep needs, proved by one harmless call
before the long run (identity, IAM, the organisation and a sample of its accounts, S3 output)."""

from __future__ import annotations

from collector.aws.clients import caller_session, open_clients, s3_client
from collector.check.account import check_caller, iam_rows, identity
from collector.check.bucket import BucketCheck
from collector.check.organization import listing_rows, member_rows
from collector.check.rows import Report, Row, render
from collector.config.settings import Settings
from collector.errors import CredentialsError
from collector.org.listing import AccountListing
from collector.output.s3 import S3Target
from collector.template import OutputTemplate

__all__ = ["Report", "check", "render"]


async def check(settings: Settings, sample: int) -> Report:
    """Every check the settings call for, in the order a sweep makes the calls."""
    try:
        base = await caller_session(settings)
    except CredentialsError as error:
        fix = "set AWS_PROFILE or --profile, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        row = Row("sts:GetCallerIdentity", "GetCallerIdentity", "caller", "failed", str(error), fix)
        return Report((row,))
    rows: list[Row] = []
    listing: AccountListing | None = None
    sampled: tuple[str, ...] = ()
    members: int | None = None
    async with open_clients(settings, session=base) as clients:
        caller = check_caller(settings)
        row, who = await identity(clients.sts, caller, "caller")
        rows.append(row)
        if who is None:
            return Report(tuple(rows))  # nothing else can work without it
        if settings.org.enabled:
            found, listing = await listing_rows(settings, base, who)
            rows += found
        # The caller's own account is swept with its own credentials when it is selected (or
        # when the listing failed and nobody can tell).
        if listing is None or who.account_id in {a.id for a in listing.to_sweep}:
            where = f"account {who.account_id}"
            rows += await iam_rows(clients.iam, caller, settings, who, where)
    if listing is not None:
        found, sampled, members = await member_rows(settings, base, who, listing, sample)
        rows += found
    template = OutputTemplate.parse(settings.output)
    if template.is_s3:
        # Output is written with the caller's own credentials, to a bucket of its account.
        target = S3Target(settings.s3_bucket_owner or who.account_id, settings.sse_kms_key_id)
        async with s3_client(settings, base) as s3:
            bucket = BucketCheck(s3, template, target, who.principal)
            rows += await bucket.run(resume=settings.resume)
    return Report(tuple(rows), sampled, members)
