"""The S3 operation a path-style REST request is, as the fault knobs name it (`PutObject`...)."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

_BUCKET_GETS = (("uploads", "ListMultipartUploads"), ("list-type", "ListObjectsV2"))
_BUCKET = {"PUT": "CreateBucket", "DELETE": "DeleteBucket", "HEAD": "HeadBucket"}


def s3_operation(environ: dict[str, Any]) -> str:
    """`PutObject`, `CreateMultipartUpload`, `ListParts`...; `Unknown` for anything else."""
    method = environ.get("REQUEST_METHOD", "GET")
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    _, _, key = environ.get("PATH_INFO", "/").lstrip("/").partition("/")
    if not key:
        if method == "GET":
            found = next((name for flag, name in _BUCKET_GETS if flag in query), "ListObjects")
            return found
        if method == "POST" and "delete" in query:
            return "DeleteObjects"
        return _BUCKET.get(method, "Unknown")
    upload = "uploadId" in query
    if method == "PUT":
        if upload and "partNumber" in query:
            return "UploadPartCopy" if "HTTP_X_AMZ_COPY_SOURCE" in environ else "UploadPart"
        return "CopyObject" if "HTTP_X_AMZ_COPY_SOURCE" in environ else "PutObject"
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload"
        return "CompleteMultipartUpload" if upload else "Unknown"
    if method == "GET":
        return "ListParts" if upload else "GetObject"
    if method == "DELETE":
        return "AbortMultipartUpload" if upload else "DeleteObject"
    return "HeadObject" if method == "HEAD" else "Unknown"
