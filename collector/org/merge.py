"""`collector manifest merge`: shard manifests (files or s3://) into the org manifest."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from collector.errors import EXIT_OK, CollectorError, ManifestError
from collector.org.manifest import merge
from collector.org.manifeststore import merge_via_s3


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return int(text)


def add_manifest_parser(commands: Any) -> None:
    """`collector manifest merge SHARD_MANIFEST... --output FILE [--expect-shards N]`."""
    manifest = commands.add_parser("manifest", help="combine and check org manifests")
    actions = manifest.add_subparsers(dest="manifest_command", required=True)
    merge_parser = actions.add_parser(
        "merge",
        help="combine the shard manifests of one run into the org manifest",
        description="Exit 0: merged and written; 1: shards or accounts missing or doubled "
        "(nothing written); 2: usage, or a manifest unreadable; 3: no AWS credentials, or S3 "
        "(or STS) cannot be reached; 4: an S3 object unreadable, or the output not writable.",
    )
    merge_parser.add_argument("shard_manifests", nargs="+", metavar="SHARD_MANIFEST")
    merge_parser.add_argument("--output", "-o", required=True, metavar="FILE")
    merge_parser.add_argument("--endpoint-url", help="S3 (and STS) endpoint, for s3:// paths")
    merge_parser.add_argument(
        "--s3-bucket-owner",
        metavar="ACCOUNT_ID",
        help="ExpectedBucketOwner of s3:// paths (default: the caller's account)",
    )
    merge_parser.add_argument(
        "--sse-kms-key-id",
        metavar="KEY",
        help="KMS key for an s3:// --output, as for the sweep's objects (default: SSE-S3)",
    )
    merge_parser.add_argument(
        "--expect-shards", type=_positive, metavar="N", help="fail unless the run had N shards"
    )


def run_manifest(args: argparse.Namespace) -> int:
    """Run a `manifest` subcommand; errors become one line on stderr and an exit code."""
    try:
        if any(str(p).startswith("s3://") for p in [*args.shard_manifests, args.output]):
            merged = merge_via_s3(args)
        else:
            merged = merge(
                [Path(p) for p in args.shard_manifests], Path(args.output), args.expect_shards
            )
    except ManifestError as error:
        print(f"collector: error: incomplete run: {error}", file=sys.stderr)
        return error.exit_code
    except CollectorError as error:
        print(f"collector: error: {error}", file=sys.stderr)
        return error.exit_code
    outcomes = ", ".join(f"{n} {outcome}" for outcome, n in sorted(merged.outcomes().items()))
    print(
        f"collector: merged {merged.merged_shards} shard manifests of run {merged.run_id}: "
        f"{len(merged.accounts)} accounts ({outcomes}) -> {args.output}",
        file=sys.stderr,
    )
    return EXIT_OK
