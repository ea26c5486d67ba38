"""Organisation sweeps: accounts, credentials per account, shards, the manifest, access report."""
