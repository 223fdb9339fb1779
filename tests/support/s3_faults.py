"""S3's failures, as botocore raises them, for a storage's client to answer with.

Tests put these on `storage.client` (the boto3 client), so that what S3 says still goes
through the storage seam's one translator, exactly as in production.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError


def s3_error(code: str, status: int, operation: str = "S3Operation") -> ClientError:
    """The ClientError botocore raises when S3 answers `status` with error `code`."""
    return ClientError(
        {
            "Error": {"Code": code, "Message": f"S3 said {code}."},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        operation,
    )


def s3_answers(error: Exception, *, then: Callable[..., Any] | None = None) -> Callable[..., Any]:
    """A client method that fails with `error` once, then calls `then` (or fails again)."""
    failed: list[bool] = []

    def call(*args: Any, **params: Any) -> Any:
        if then is not None and failed:
            return then(*args, **params)
        failed.append(True)
        raise error

    return call
