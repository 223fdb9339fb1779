"""The one seam around S3: the only package that imports boto3/botocore or reads S3's errors.

- `s3`: `MultipartStorage`, one method per S3 operation, and `get_storage()`;
- `presign`: the fast presigner behind `presign_upload_parts`;
- `types`: the dataclasses that cross the seam (never boto3's dicts);
- `bucket`: Partwise's CORS and lifecycle rules, and the one reader of S3's rule documents.

What leaves the seam is those dataclasses and the domain errors of `uploads.exceptions`
(`UploadGone`, `StorageBusy`, `StorageRefused`, `PartRefused`, `CompletionUnknown`,
`StorageUnreachable`, all under `StorageFailed`).
"""

from .bucket import (
    CHECKSUM_HEADER,
    CORS_RULE_ID,
    LIFECYCLE_RULE_ID,
    abort_days,
    cors_rule,
    lifecycle_abort_date,
    lifecycle_rule,
)
from .s3 import MultipartStorage, get_storage, reset_storage
from .types import (
    CorsRule,
    LifecycleRule,
    MultipartUpload,
    PartToSign,
    SignedPart,
    StoredObject,
    StoredPart,
)

__all__ = [
    "CHECKSUM_HEADER",
    "CORS_RULE_ID",
    "LIFECYCLE_RULE_ID",
    "CorsRule",
    "LifecycleRule",
    "MultipartStorage",
    "MultipartUpload",
    "PartToSign",
    "SignedPart",
    "StoredObject",
    "StoredPart",
    "abort_days",
    "cors_rule",
    "get_storage",
    "lifecycle_abort_date",
    "lifecycle_rule",
    "reset_storage",
]
