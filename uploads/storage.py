"""The one seam around S3: the only module that imports boto3/botocore.

`MultipartStorage` has one method per S3 operation, named after it, taking and returning plain
values (frozen dataclasses, strings). Every botocore error becomes `StorageFailed` carrying S3's
error code. `get_storage()` builds the clients on first use, never at import, so moto (in unit
tests) and SeaweedFS (in integration tests) are reached by changing settings only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from django.conf import settings
from django.core.signals import setting_changed

from .conf import upload_settings
from .exceptions import CompletionUnknown, StorageFailed

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger(__name__)

CHECKSUM_HEADER = "x-amz-checksum-sha256"


@dataclass(frozen=True)
class StoredPart:
    """A part as S3's ListParts reports it."""

    number: int
    size: int
    etag: str
    checksum: str = ""


@dataclass(frozen=True)
class StoredObject:
    """An object as S3's HeadObject reports it."""

    size: int
    etag: str
    checksum: str = ""


@dataclass(frozen=True)
class CompletedPart:
    """One entry of the part list sent to CompleteMultipartUpload."""

    number: int
    etag: str
    checksum: str = ""


@dataclass(frozen=True)
class MultipartUploadInfo:
    """A multipart upload as ListMultipartUploads reports it."""

    key: str
    upload_id: str
    initiated: datetime


@dataclass(frozen=True)
class PresignedPart:
    url: str
    headers: dict[str, str]


def normalize_etag(etag: str) -> str:
    """ETags compare without their surrounding quotes (Uppy 6 strips them, Uppy 5 keeps them)."""
    return etag.strip().strip('"')


def _failure(error: Exception, operation: str) -> StorageFailed:
    if isinstance(error, ClientError):
        s3_code = str(error.response.get("Error", {}).get("Code", ""))
        return StorageFailed(f"S3 refused {operation} ({s3_code}).", s3_code=s3_code)
    return StorageFailed(f"S3 could not be reached for {operation}.", s3_code="")


def _is_no_such_upload(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code in {"NoSuchUpload", "404"} or status == 404


class MultipartStorage:
    """S3 multipart operations on one bucket."""

    def __init__(self, client: S3Client, bucket: str, *, presign_client: S3Client | None = None):
        self.client = client
        self.bucket = bucket
        # Presigned URLs name the endpoint that browsers reach, which may differ from ours.
        self.presign_client = presign_client or client

    # --- multipart uploads -------------------------------------------------------------------
    def create_multipart_upload(
        self, key: str, *, content_type: str, checksum_algorithm: str = ""
    ) -> str:
        """Start a multipart upload at `key` and return S3's UploadId."""
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        if checksum_algorithm:
            params["ChecksumAlgorithm"] = checksum_algorithm
        try:
            return self.client.create_multipart_upload(**params)["UploadId"]
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "CreateMultipartUpload") from error

    def presign_upload_part(
        self,
        key: str,
        upload_id: str,
        number: int,
        *,
        expires_in: int,
        content_length: int | None = None,
        checksum_sha256: str = "",
    ) -> PresignedPart:
        """A presigned UploadPart URL binding the part's length and checksum when given.

        S3 refuses a body whose length or SHA-256 differs from what was signed. The returned
        headers are the ones the client must send as they are; Content-Length is signed too but
        every HTTP client sets it from the body itself (browsers refuse to let scripts set it).
        """
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": number,
        }
        headers: dict[str, str] = {}
        if content_length is not None:
            params["ContentLength"] = content_length
        if checksum_sha256:
            params["ChecksumSHA256"] = checksum_sha256
            headers[CHECKSUM_HEADER] = checksum_sha256
        url = self.presign_client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=expires_in
        )
        return PresignedPart(url=url, headers=headers)

    def list_parts(self, key: str, upload_id: str) -> list[StoredPart]:
        """Every part S3 holds for the upload, following ListParts pages past 1,000 parts."""
        parts: list[StoredPart] = []
        marker = 0
        try:
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
                )
                for part in page.get("Parts", []):
                    parts.append(
                        StoredPart(
                            number=part["PartNumber"],
                            size=part["Size"],
                            etag=normalize_etag(part["ETag"]),
                            checksum=part.get("ChecksumSHA256", "") or "",
                        )
                    )
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "ListParts") from error

    def complete_multipart_upload(
        self, key: str, upload_id: str, parts: Sequence[CompletedPart]
    ) -> str:
        """Complete the upload from `parts` and return the object's ETag.

        NoSuchUpload (a previous attempt may have completed it) and a dropped connection leave
        the outcome unknown: those raise CompletionUnknown, for the caller to settle with HEAD.
        """
        entries = []
        for part in parts:
            entry: dict[str, Any] = {"PartNumber": part.number, "ETag": f'"{part.etag}"'}
            if part.checksum:
                entry["ChecksumSHA256"] = part.checksum
            entries.append(entry)
        try:
            response = self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": entries}
            )
        except ClientError as error:
            if _is_no_such_upload(error):
                raise CompletionUnknown(
                    "S3 no longer knows the upload.", s3_code="NoSuchUpload"
                ) from error
            raise _failure(error, "CompleteMultipartUpload") from error
        except (ConnectionError, HTTPClientError) as error:
            # HTTPClientError covers a connection closed or a read timed out mid-request:
            # S3 may have completed the upload without our hearing it.
            raise CompletionUnknown("The connection to S3 dropped while completing.") from error
        except BotoCoreError as error:
            raise _failure(error, "CompleteMultipartUpload") from error
        return normalize_etag(response.get("ETag", ""))

    def abort_multipart_upload(self, key: str, upload_id: str) -> bool:
        """Abort the upload; False when S3 had no such upload (already gone counts as done)."""
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if _is_no_such_upload(error):
                return False
            raise _failure(error, "AbortMultipartUpload") from error
        except BotoCoreError as error:
            raise _failure(error, "AbortMultipartUpload") from error
        return True

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUploadInfo]:
        """Every multipart upload in progress under `prefix` (all pages)."""
        uploads: list[MultipartUploadInfo] = []
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        try:
            while True:
                page = self.client.list_multipart_uploads(**params)
                for item in page.get("Uploads", []):
                    uploads.append(
                        MultipartUploadInfo(
                            key=item["Key"], upload_id=item["UploadId"], initiated=item["Initiated"]
                        )
                    )
                if not page.get("IsTruncated"):
                    return uploads
                params["KeyMarker"] = page["NextKeyMarker"]
                params["UploadIdMarker"] = page["NextUploadIdMarker"]
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "ListMultipartUploads") from error

    # --- objects ----------------------------------------------------------------------------
    def head_object(self, key: str) -> StoredObject | None:
        """The object's size, ETag and checksum, or None when there is no object at `key`."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 404 or error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey"}:
                return None
            raise _failure(error, "HeadObject") from error
        except BotoCoreError as error:
            raise _failure(error, "HeadObject") from error
        return StoredObject(
            size=response["ContentLength"],
            etag=normalize_etag(response.get("ETag", "")),
            checksum=response.get("ChecksumSHA256", "") or "",
        )

    # --- bucket set-up (management command) ---------------------------------------------------
    def head_bucket(self) -> bool:
        """True when the bucket exists (and these credentials may use it)."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            if error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                return False
            raise _failure(error, "HeadBucket") from error
        except BotoCoreError as error:
            raise _failure(error, "HeadBucket") from error
        return True

    def create_bucket(self) -> bool:
        """Create the bucket if it does not exist; True when it was created."""
        if self.head_bucket():
            return False
        try:
            params: dict[str, Any] = {"Bucket": self.bucket}
            region = self.client.meta.region_name
            if region and region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": region}
            self.client.create_bucket(**params)
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "CreateBucket") from error
        return True

    def put_bucket_cors(
        self, origins: Iterable[str], *, other_rules: Sequence[dict[str, Any]] = ()
    ) -> None:
        """Allow browsers on `origins` to PUT parts, and expose ETag so they can read it.

        PutBucketCors replaces the whole configuration: `other_rules` are the bucket's rules
        that are not Partwise's, written back unchanged.
        """
        rules = [cors_rule(origins), *other_rules]
        try:
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": rules})
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "PutBucketCors") from error

    def get_bucket_cors(self) -> list[dict[str, Any]]:
        """The bucket's CORS rules; empty when it has none."""
        try:
            return self.client.get_bucket_cors(Bucket=self.bucket)["CORSRules"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchCORSConfiguration":
                return []
            raise _failure(error, "GetBucketCors") from error
        except BotoCoreError as error:
            raise _failure(error, "GetBucketCors") from error

    def put_bucket_lifecycle_configuration(
        self, *, prefix: str, days: int, other_rules: Sequence[dict[str, Any]] = ()
    ) -> None:
        """The safety net: S3 itself aborts multipart uploads under `prefix` after `days`.

        The call replaces every lifecycle rule: `other_rules` are written back unchanged.
        """
        rules = [lifecycle_rule(prefix=prefix, days=days), *other_rules]
        try:
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
            )
        except (ClientError, BotoCoreError) as error:
            raise _failure(error, "PutBucketLifecycleConfiguration") from error

    def get_bucket_lifecycle_configuration(self) -> list[dict[str, Any]]:
        """The bucket's lifecycle rules; empty when it has none."""
        try:
            return self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)["Rules"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") == "NoSuchLifecycleConfiguration":
                return []
            raise _failure(error, "GetBucketLifecycleConfiguration") from error
        except BotoCoreError as error:
            raise _failure(error, "GetBucketLifecycleConfiguration") from error


# --- bucket rules written by setup_storage -----------------------------------------------------
CORS_RULE_ID = "partwise-browser-uploads"
LIFECYCLE_RULE_ID = "partwise-abort-incomplete-multipart-uploads"


def cors_rule(origins: Iterable[str]) -> dict[str, Any]:
    """Partwise's CORS rule: browsers on `origins` PUT parts and read the ETag S3 answers.

    Without ETag in ExposeHeaders a browser script cannot read it, and no part can be reported.
    """
    return {
        "ID": CORS_RULE_ID,
        "AllowedOrigins": list(origins),
        "AllowedMethods": ["PUT", "GET", "HEAD"],
        "AllowedHeaders": ["*"],
        "ExposeHeaders": ["ETag", CHECKSUM_HEADER],
        "MaxAgeSeconds": 3600,
    }


def lifecycle_rule(*, prefix: str, days: int) -> dict[str, Any]:
    """Partwise's lifecycle rule: S3 aborts multipart uploads under `prefix` after `days`."""
    return {
        "ID": LIFECYCLE_RULE_ID,
        "Status": "Enabled",
        "Filter": {"Prefix": prefix},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days},
    }


# --- building clients ----------------------------------------------------------------------
_lock = threading.Lock()
_storages: dict[tuple[Any, ...], MultipartStorage] = {}


def _client(endpoint_url: str | None) -> S3Client:
    config = Config(
        region_name=settings.AWS_S3_REGION_NAME,
        signature_version="s3v4",
        retries={"mode": "standard", "max_attempts": 4},
        # Path-style addressing: S3-compatible servers (SeaweedFS, MinIO) rarely have wildcard DNS.
        s3={"addressing_style": "path" if endpoint_url else "auto"},
        # Only send checksums S3 asks for: several S3-compatible servers refuse the default
        # CRC32 trailers that botocore >= 1.36 adds to every request.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        connect_timeout=5,
        read_timeout=60,
        max_pool_connections=32,
    )
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        aws_access_key_id=settings.AWS_ACCESS_KEY_ID or None,
        aws_secret_access_key=settings.AWS_SECRET_ACCESS_KEY or None,
        config=config,
    )


def get_storage() -> MultipartStorage:
    """The storage for the configured bucket, built on first use and cached per settings."""
    bucket = upload_settings().bucket
    endpoint = settings.AWS_S3_ENDPOINT_URL
    public_endpoint = settings.AWS_S3_PUBLIC_ENDPOINT_URL or endpoint
    cache_key = (
        bucket,
        endpoint,
        public_endpoint,
        settings.AWS_S3_REGION_NAME,
        settings.AWS_ACCESS_KEY_ID,
        settings.AWS_SECRET_ACCESS_KEY,
    )
    storage = _storages.get(cache_key)
    if storage is None:
        with _lock:
            storage = _storages.get(cache_key)
            if storage is None:
                client = _client(endpoint)
                presign = client if public_endpoint == endpoint else _client(public_endpoint)
                storage = MultipartStorage(client, bucket, presign_client=presign)
                _storages[cache_key] = storage
    return storage


def reset_storage(**kwargs: Any) -> None:
    """Drop cached clients (on setting changes, and between tests with different mocks)."""
    with _lock:
        _storages.clear()


setting_changed.connect(reset_storage, dispatch_uid="uploads.storage.reset_storage")
