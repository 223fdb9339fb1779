"""Partwise's bucket rules (CORS and lifecycle), and the one reader of S3's rule documents.

`setup_storage` writes these rules; the admin reads the lifecycle rule to say when S3 itself
would abort an upload. Both read rules through `lifecycle_rule_from_s3`, so there is one answer
to "which keys does this rule cover?".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from .types import CorsRule, LifecycleRule

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import (
        CORSRuleOutputTypeDef,
        CORSRuleTypeDef,
        LifecycleRuleOutputTypeDef,
    )

CORS_RULE_ID = "partwise-browser-uploads"
LIFECYCLE_RULE_ID = "partwise-abort-incomplete-multipart-uploads"
CHECKSUM_HEADER = "x-amz-checksum-sha256"
# Each part digest's signed header, and boto3's parameter for it (uploads/integrity.py names
# the digests). Content-MD5 is the one nearly every S3 verifies; none is ever hoisted into the
# query string, where AWS and MinIO would ignore it.
CHECKSUM_HEADERS = {
    "SHA256": CHECKSUM_HEADER,
    "CRC32C": "x-amz-checksum-crc32c",
    "MD5": "Content-MD5",
}
CHECKSUM_PARAMETERS = {"SHA256": "ChecksumSHA256", "CRC32C": "ChecksumCRC32C", "MD5": "ContentMD5"}
# The digests S3 keeps with a part and an object (answered by ListParts and HeadObject) and is
# given again at completion; an MD5 is the part's ETag instead.
STORED_CHECKSUMS = {"SHA256": "ChecksumSHA256", "CRC32C": "ChecksumCRC32C"}


def cors_rule(origins: Iterable[str]) -> CorsRule:
    """Partwise's CORS rule: browsers on `origins` PUT parts and read the ETag S3 answers.

    Without ETag in ExposeHeaders a browser script cannot read it, and no part can be reported.
    """
    return CorsRule(
        id=CORS_RULE_ID,
        allowed_origins=tuple(origins),
        allowed_methods=("PUT", "GET", "HEAD"),
        allowed_headers=("*",),
        expose_headers=("ETag", CHECKSUM_HEADER, CHECKSUM_HEADERS["CRC32C"]),
        max_age_seconds=3600,
    )


def origin_allowed(origin: str, allowed_origins: Iterable[str]) -> bool:
    """Whether a CORS rule for `allowed_origins` admits a browser on `origin`.

    As S3 matches AllowedOrigin: exactly, or with its one `*` wildcard ("*" alone: any origin,
    "https://*.example.com": its subdomains). Scheme and host are compared without case.
    """
    origin = origin.lower()
    for allowed in allowed_origins:
        pattern = ".*".join(re.escape(piece) for piece in allowed.lower().split("*"))
        if re.fullmatch(pattern, origin):
            return True
    return False


def lifecycle_rule(*, prefix: str, days: int) -> LifecycleRule:
    """Partwise's lifecycle rule: S3 aborts multipart uploads under `prefix` after `days`."""
    return LifecycleRule(
        id=LIFECYCLE_RULE_ID,
        enabled=True,
        prefix=prefix,
        abort_incomplete_after_days=days,
        document={
            "ID": LIFECYCLE_RULE_ID,
            "Status": "Enabled",
            "Filter": {"Prefix": prefix},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
        },
    )


def rule_prefix(document: LifecycleRuleOutputTypeDef) -> str | None:
    """The key prefix an S3 lifecycle rule covers ("" = every key); None for tag/size filters.

    S3 writes the filter in several shapes: `Filter: {"Prefix": p}`, `Filter: {}` (every key),
    `Filter: {"And": {...}}` (prefix with tags or sizes), or the legacy top-level `Prefix`.
    """
    if "Filter" not in document or document["Filter"] is None:
        return str(document.get("Prefix", "") or "")
    flt = document["Filter"]
    if set(flt) - {"Prefix"}:
        return None
    return str(flt.get("Prefix", "") or "")


def lifecycle_rule_from_s3(document: LifecycleRuleOutputTypeDef) -> LifecycleRule:
    abort = document.get("AbortIncompleteMultipartUpload") or {}
    days = abort.get("DaysAfterInitiation")
    return LifecycleRule(
        id=str(document.get("ID", "") or ""),
        enabled=document.get("Status") == "Enabled",
        prefix=rule_prefix(document),
        abort_incomplete_after_days=int(days) if days else None,
        document=document.copy(),
    )


def cors_rule_from_s3(document: CORSRuleOutputTypeDef) -> CorsRule:
    return CorsRule(
        id=str(document.get("ID", "") or ""),
        allowed_origins=tuple(document.get("AllowedOrigins", ())),
        allowed_methods=tuple(document.get("AllowedMethods", ())),
        allowed_headers=tuple(document.get("AllowedHeaders", ())),
        expose_headers=tuple(document.get("ExposeHeaders", ())),
        max_age_seconds=int(document.get("MaxAgeSeconds") or 0),
    )


def cors_rule_to_s3(rule: CorsRule) -> CORSRuleTypeDef:
    document: CORSRuleTypeDef = {
        "AllowedOrigins": list(rule.allowed_origins),
        "AllowedMethods": list(rule.allowed_methods),
    }
    if rule.id:
        document["ID"] = rule.id
    if rule.allowed_headers:
        document["AllowedHeaders"] = list(rule.allowed_headers)
    if rule.expose_headers:
        document["ExposeHeaders"] = list(rule.expose_headers)
    if rule.max_age_seconds:
        document["MaxAgeSeconds"] = rule.max_age_seconds
    return document


def abort_days(rules: Iterable[LifecycleRule], prefix: str) -> int | None:
    """Days after initiation when some enabled rule aborts every upload under `prefix`."""
    days = [
        rule.abort_incomplete_after_days
        for rule in rules
        if rule.aborts_under(prefix) and rule.abort_incomplete_after_days
    ]
    return min(days) if days else None


def lifecycle_abort_date(initiated: datetime, days: int) -> datetime:
    """When S3 aborts an upload: initiation + days, rounded up to the next midnight UTC.

    https://docs.aws.amazon.com/AmazonS3/latest/userguide/mpu-abort-incomplete-mpu-lifecycle-config.html
    """
    moment = initiated.astimezone(UTC) + timedelta(days=days)
    midnight = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return midnight if moment == midnight else midnight + timedelta(days=1)
