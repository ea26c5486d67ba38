"""File descriptors: the soft limit raised to the hard one, and how many accounts fit in it."""

from __future__ import annotations

import resource

# Linux refuses a soft limit above fs.nr_open (1,048,576 by default) even when the hard limit
# is unlimited; that many is more than any sweep uses.
UNLIMITED_CAP = 1 << 20
# The process itself: the caller's clients, the manifest and its lock, logs, the interpreter.
RESERVED = 64
# An account beyond the connection pools every account shares (IAM, STS): its S3 upload, its
# output's `.part`, lock and resume files.
ACCOUNT_OVERHEAD = 16


def raise_open_files_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one (containers often start at 1,024 with
    far more allowed); the soft limit in effect afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = UNLIMITED_CAP if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            return soft  # not allowed here: live with what there is, and size to it
        return wanted
    return UNLIMITED_CAP if soft == resource.RLIM_INFINITY else soft


def open_files_limit() -> int:
    """The soft RLIMIT_NOFILE now."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return UNLIMITED_CAP if soft == resource.RLIM_INFINITY else soft


def accounts_within(open_files: int, pool_connections: int) -> int:
    """How many account sweeps can run at once without running out of descriptors: each may
    hold its whole IAM connection pool open, plus its other clients and files."""
    return max(1, (open_files - RESERVED) // (pool_connections + ACCOUNT_OVERHEAD))
