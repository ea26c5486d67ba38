"""Where records go: the sink, file and S3 writers, the output lock, and resume."""
