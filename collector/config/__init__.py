"""Settings: the schema of every key (type, default, bound, help) and loading it."""
