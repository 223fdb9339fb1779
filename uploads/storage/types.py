"""What crosses the storage seam: small frozen dataclasses, never boto3's response dicts.

The part types (PartToSign, SignedPart, StoredPart) are the domain's own, from uploads.parts;
the rest describe S3 things only the storage reads: objects, multipart uploads, bucket rules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..parts import PartToSign, SignedPart, StoredPart

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import LifecycleRuleOutputTypeDef, LifecycleRuleTypeDef

__all__ = [
    "CorsRule",
    "LifecycleRule",
    "MultipartUpload",
    "PartToSign",
    "SignedPart",
    "StoredObject",
    "StoredPart",
]


@dataclass(frozen=True)
class StoredObject:
    """An object as S3's HeadObject reports it."""

    size: int
    etag: str
    checksum: str = ""


@dataclass(frozen=True)
class MultipartUpload:
    """A multipart upload in progress, as ListMultipartUploads reports it."""

    key: str
    s3_upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class CorsRule:
    """One CORS rule of a bucket."""

    allowed_origins: tuple[str, ...]
    allowed_methods: tuple[str, ...]
    allowed_headers: tuple[str, ...] = ()
    expose_headers: tuple[str, ...] = ()
    max_age_seconds: int = 0
    id: str = ""

    def same_effect(self, other: CorsRule) -> bool:
        """True when both rules allow the same (ID, order and case of names aside)."""
        return _cors_effect(self) == _cors_effect(other)


def _cors_effect(
    rule: CorsRule,
) -> tuple[frozenset[str], frozenset[str], frozenset[str], frozenset[str], int]:
    return (
        frozenset(rule.allowed_origins),
        frozenset(m.upper() for m in rule.allowed_methods),
        frozenset(h.lower() for h in rule.allowed_headers),
        frozenset(h.lower() for h in rule.expose_headers),
        rule.max_age_seconds,
    )


@dataclass(frozen=True)
class LifecycleRule:
    """One lifecycle rule of a bucket, as far as Partwise reads it.

    `prefix` is the key prefix the rule covers ("" = the whole bucket), None when its filter
    also tests tags or sizes. `document` is the rule as S3 gave it, so that writing the
    bucket's rules back keeps everything Partwise does not read (transitions, expirations…).
    """

    id: str
    enabled: bool
    prefix: str | None
    abort_incomplete_after_days: int | None
    document: LifecycleRuleTypeDef | LifecycleRuleOutputTypeDef = field(compare=False, repr=False)

    def aborts_under(self, prefix: str) -> bool:
        """True when this rule aborts incomplete multipart uploads of every key under `prefix`."""
        return (
            self.enabled
            and bool(self.abort_incomplete_after_days)
            and self.prefix is not None
            and prefix.startswith(self.prefix)
        )

    def same_effect(self, other: LifecycleRule) -> bool:
        return (self.prefix, self.enabled, self.abort_incomplete_after_days) == (
            other.prefix,
            other.enabled,
            other.abort_incomplete_after_days,
        )
