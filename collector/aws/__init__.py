"""The AWS boundary: clients, the IAM calls and their one retry policy, rate limits, HTTP."""
