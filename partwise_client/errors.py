"""Every error the client raises: one base, `PartwiseError`, with a stable `code` to switch on.

The codes of S3's answers to part PUTs (`url_expired`, `checksum_mismatch`, `upload_gone`,
`storage_unavailable`, `part_refused`) are the browser client's too: tests/vectors/s3_errors.json
holds both clients to them.
"""

from __future__ import annotations

from typing import Any


class PartwiseError(Exception):
    """An answer (or the lack of one) that ends the operation. `code` is the server's code."""

    def __init__(
        self,
        detail: str,
        *,
        code: str = "error",
        http_status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.http_status = http_status
        self.extra = extra or {}  # the answer's other fields, e.g. missing_parts


class AuthError(PartwiseError):
    """401/403: no token, a revoked token, or not allowed."""


class NotFound(PartwiseError):
    """404: the upload does not exist or is not yours."""


class NothingToResume(PartwiseError):
    """No unfinished upload has this file's fingerprint."""


class FileMismatch(PartwiseError):
    """An unfinished upload has this fingerprint, but its uploaded bytes are not this file's."""


class PartRefused(PartwiseError):
    """S3 refused a part for a reason retrying cannot fix (wrong length, checksum, signature)."""
