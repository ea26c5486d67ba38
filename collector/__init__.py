"""collector: bulk export of AWS IAM service-last-accessed (Access Advisor) data to JSONL."""

__version__ = "0.2.0"
