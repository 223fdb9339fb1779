"""S3 multipart operations on one bucket: the only code that calls boto3.

`MultipartStorage` has one method per S3 operation, named after it, taking and returning plain
values (the dataclasses of `types`). Every botocore error goes through `_translated`, the one
place that reads S3's error vocabulary, and leaves as a domain error: `UploadGone` (no such
upload or key), `StorageBusy` (try again later), `StorageRefused` (S3 looked and said no),
`CompletionUnknown` or `StorageUnreachable` (S3 could not be reached), with S3's code kept for the
message. `get_storage()` builds the clients on first use, never at import, so moto (unit tests)
and SeaweedFS (integration tests) are reached by changing settings only.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError
from django.conf import settings
from django.core.signals import setting_changed
from django.utils import timezone

from ..conf import upload_settings
from ..exceptions import (
    CompletionUnknown,
    PartRefused,
    StorageBusy,
    StorageRefused,
    StorageUnreachable,
    UploadGone,
)
from ..parts import normalize_etag
from .bucket import (
    CHECKSUM_HEADERS,
    CHECKSUM_PARAMETERS,
    STORED_CHECKSUMS,
    cors_rule,
    cors_rule_from_s3,
    cors_rule_to_s3,
    lifecycle_rule,
    lifecycle_rule_from_s3,
)
from .presign import FastPartSigner
from .types import (
    CorsRule,
    LifecycleRule,
    MultipartUpload,
    PartToSign,
    SignedPart,
    StoredObject,
    StoredPart,
)

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import (
        CompletedPartTypeDef,
        LifecycleRuleOutputTypeDef,
        LifecycleRuleTypeDef,
        ListMultipartUploadsRequestTypeDef,
    )
else:
    S3Client = Any

# S3's answers meaning "the multipart upload (or object) is not there".
_GONE_CODES = frozenset({"NoSuchUpload", "NoSuchKey", "404"})
# Answers meaning "not now": retrying later may succeed.
_BUSY_CODES = frozenset(
    {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "503", "500"}
)
# CompleteMultipartUpload's answers about one of the listed parts (not the upload as a whole).
_PART_CODES = frozenset({"InvalidPart", "BadDigest", "InvalidDigest"})
# "Nothing configured" answers of the bucket-rule reads: an empty list, not an error.
_NO_RULES_CODES = frozenset({"NoSuchCORSConfiguration", "NoSuchLifecycleConfiguration"})
# Uploads whose signing template is kept (a few hundred bytes each): a batch-of-1 signer (the
# CLI, Uppy) pays boto3's full path once per upload instead of once per part.
SIGNER_CACHE_SIZE = 1024


def _s3_code(error: ClientError) -> tuple[str, int | None]:
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    return code, status


@contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn whatever botocore raises during `operation` into the domain's storage errors."""
    try:
        yield
    except ClientError as error:
        code, status = _s3_code(error)
        if code in _GONE_CODES or status == 404:
            raise UploadGone(
                f"S3 has no such upload for {operation} ({code}).", s3_code=code
            ) from error
        if code in _BUSY_CODES or (status or 0) >= 500:
            raise StorageBusy(
                f"S3 is busy and refused {operation} ({code}).", s3_code=code
            ) from error
        raise StorageRefused(f"S3 refused {operation} ({code}).", s3_code=code) from error
    except BotoCoreError as error:
        raise StorageUnreachable(f"S3 could not be reached for {operation}.") from error


def _part_headers(part: PartToSign, checksum_algorithm: str) -> dict[str, str]:
    """What the client must send with the part besides the body (and its Content-Length)."""
    return {CHECKSUM_HEADERS[checksum_algorithm]: part.checksum} if part.checksum else {}


def _stored_checksum(answer: Any) -> str:
    """The part's or object's digest S3 keeps (SHA-256 or CRC32C), "" when it keeps none."""
    for name in STORED_CHECKSUMS.values():
        if answer.get(name):
            return str(answer[name])
    return ""


class MultipartStorage:
    """S3 multipart operations on one bucket."""

    def __init__(self, client: S3Client, bucket: str, *, presign_client: S3Client | None = None):
        self.client = client
        self.bucket = bucket
        # Presigned URLs name the endpoint that browsers reach, which may differ from ours.
        self.presign_client = presign_client or client
        # Per upload (key, S3 upload id): its fast part signer, most recently used last.
        self._signers: OrderedDict[tuple[str, str], FastPartSigner | None] = OrderedDict()
        self._signers_lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        """The S3 endpoint this storage talks to (AWS's regional one when none is configured)."""
        return str(self.client.meta.endpoint_url)

    # --- multipart uploads -------------------------------------------------------------------
    def create_multipart_upload(
        self,
        key: str,
        *,
        content_type: str,
        checksum_algorithm: str = "",
        content_disposition: str = "",
    ) -> str:
        """Start a multipart upload at `key` and return S3's upload id.

        A SHA256 or CRC32C upload is created with that ChecksumAlgorithm, so S3 keeps each
        part's digest; an MD5 one with none (Content-MD5 needs no declaring).
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_type:
            params["ContentType"] = content_type
        if content_disposition:
            params["ContentDisposition"] = content_disposition
        if checksum_algorithm in STORED_CHECKSUMS:
            params["ChecksumAlgorithm"] = checksum_algorithm
        with _translated("CreateMultipartUpload"):
            return str(self.client.create_multipart_upload(**params)["UploadId"])

    def presign_upload_parts(
        self,
        key: str,
        s3_upload_id: str,
        parts: Sequence[PartToSign],
        *,
        expires_in: int,
        checksum_algorithm: str = "SHA256",
    ) -> list[SignedPart]:
        """Presigned UploadPart URLs for a batch of parts of one upload, in the order given.

        Each URL binds the part's length and, when given, its checksum of `checksum_algorithm`
        as a signed header (x-amz-checksum-sha256, x-amz-checksum-crc32c or Content-MD5), so
        a store that verifies it refuses a body that differs. The headers returned are the ones
        the client must send as they are; Content-Length is signed too, but every HTTP client
        sets it from the body itself. The
        URLs are exactly boto3's `generate_presigned_url("upload_part", …)` for the same moment,
        for a fraction of the cost: see `presign.FastPartSigner`.
        """
        if not parts:
            return []
        expires_at = timezone.now() + timedelta(seconds=expires_in)
        urls: list[str] | None = None
        signer = self._part_signer(key, s3_upload_id)
        if signer is not None:
            urls = signer.sign(
                parts, expires_in=expires_in, checksum_header=CHECKSUM_HEADERS[checksum_algorithm]
            )
        if urls is None:
            urls = [
                self._boto3_presign(key, s3_upload_id, part, expires_in, checksum_algorithm)
                for part in parts
            ]
        return [
            SignedPart(
                number=part.number,
                url=url,
                method="PUT",
                headers=_part_headers(part, checksum_algorithm),
                size=part.size,
                expires_at=expires_at,
            )
            for part, url in zip(parts, urls, strict=True)
        ]

    def _boto3_presign(
        self,
        key: str,
        s3_upload_id: str,
        part: PartToSign,
        expires_in: int,
        checksum_algorithm: str = "SHA256",
    ) -> str:
        """The reference: boto3's generate_presigned_url (events, endpoint rules, validation)."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": s3_upload_id,
            "PartNumber": part.number,
        }
        if part.size is not None:
            params["ContentLength"] = part.size
        if part.checksum:
            params[CHECKSUM_PARAMETERS[checksum_algorithm]] = part.checksum
        return str(
            self.presign_client.generate_presigned_url(
                "upload_part", Params=params, ExpiresIn=expires_in
            )
        )

    def _part_signer(self, key: str, s3_upload_id: str) -> FastPartSigner | None:
        """The cached fast signer of one upload (None: this client needs boto3's full path)."""
        cache_key = (key, s3_upload_id)
        with self._signers_lock:
            if cache_key in self._signers:
                self._signers.move_to_end(cache_key)
                return self._signers[cache_key]
        signer = FastPartSigner.build(
            self.presign_client,
            template_url=self._boto3_presign(key, s3_upload_id, PartToSign(1), 900),
        )
        with self._signers_lock:
            self._signers[cache_key] = signer
            while len(self._signers) > SIGNER_CACHE_SIZE:
                self._signers.popitem(last=False)
        return signer

    def list_parts(self, key: str, s3_upload_id: str) -> list[StoredPart]:
        """Every part S3 holds for the upload, following ListParts pages past 1,000 parts.

        Raises UploadGone when S3 no longer has the multipart upload.
        """
        parts: list[StoredPart] = []
        marker = 0
        with _translated("ListParts"):
            while True:
                page = self.client.list_parts(
                    Bucket=self.bucket, Key=key, UploadId=s3_upload_id, PartNumberMarker=marker
                )
                for part in page.get("Parts", []):
                    parts.append(
                        StoredPart(
                            number=part["PartNumber"],
                            size=part["Size"],
                            etag=normalize_etag(part["ETag"]),
                            checksum=_stored_checksum(part),
                        )
                    )
                if not page.get("IsTruncated"):
                    return parts
                marker = int(page["NextPartNumberMarker"])

    def complete_multipart_upload(
        self,
        key: str,
        s3_upload_id: str,
        parts: Sequence[StoredPart],
        *,
        checksum_algorithm: str = "SHA256",
    ) -> str:
        """Complete the upload from `parts` and return the object's ETag.

        No such upload (a previous attempt may have completed it) and a dropped connection
        leave the outcome unknown: those raise CompletionUnknown, for the caller to settle with
        a HEAD of the object.
        """
        entries: list[CompletedPartTypeDef] = []
        for part in parts:
            entry: CompletedPartTypeDef = {"PartNumber": part.number, "ETag": f'"{part.etag}"'}
            if part.checksum and checksum_algorithm in STORED_CHECKSUMS:
                entry[STORED_CHECKSUMS[checksum_algorithm]] = part.checksum  # type: ignore[literal-required]
            entries.append(entry)
        try:
            with _translated("CompleteMultipartUpload"):
                try:
                    response = self.client.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=s3_upload_id,
                        MultipartUpload={"Parts": entries},
                    )
                except (ConnectionError, HTTPClientError) as error:
                    # A connection closed or a read timed out mid-request: S3 may have
                    # completed the upload without our hearing it.
                    raise CompletionUnknown(
                        "The connection to S3 dropped while completing."
                    ) from error
        except StorageRefused as error:
            if isinstance(error, UploadGone):
                raise CompletionUnknown(
                    "S3 no longer knows the upload.", s3_code=error.s3_code
                ) from error
            if error.s3_code in _PART_CODES:
                raise PartRefused(error.detail, s3_code=error.s3_code) from error
            raise
        except UploadGone as error:
            raise CompletionUnknown(
                "S3 no longer knows the upload.", s3_code=error.s3_code
            ) from error
        return normalize_etag(response.get("ETag", ""))

    def abort_multipart_upload(self, key: str, s3_upload_id: str) -> bool:
        """Abort the upload; False when S3 had no such upload (already gone counts as done)."""
        try:
            with _translated("AbortMultipartUpload"):
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=key, UploadId=s3_upload_id
                )
        except UploadGone:
            return False
        return True

    def list_multipart_uploads(self, prefix: str) -> list[MultipartUpload]:
        """Every multipart upload in progress under `prefix` (all pages)."""
        uploads: list[MultipartUpload] = []
        params: ListMultipartUploadsRequestTypeDef = {"Bucket": self.bucket, "Prefix": prefix}
        with _translated("ListMultipartUploads"):
            while True:
                page = self.client.list_multipart_uploads(**params)
                for item in page.get("Uploads", []):
                    uploads.append(
                        MultipartUpload(
                            key=item["Key"],
                            s3_upload_id=item["UploadId"],
                            initiated=item["Initiated"],
                        )
                    )
                if not page.get("IsTruncated"):
                    return uploads
                params["KeyMarker"] = page["NextKeyMarker"]
                params["UploadIdMarker"] = page["NextUploadIdMarker"]

    # --- objects ----------------------------------------------------------------------------
    def head_object(self, key: str) -> StoredObject | None:
        """The object's size, ETag and checksum, or None when there is no object at `key`."""
        try:
            with _translated("HeadObject"):
                response = self.client.head_object(
                    Bucket=self.bucket, Key=key, ChecksumMode="ENABLED"
                )
        except UploadGone:
            return None
        return StoredObject(
            size=response["ContentLength"],
            etag=normalize_etag(response.get("ETag", "")),
            checksum=_stored_checksum(response),
        )

    def read_object(self, key: str, *, chunk_size: int = 8 * 1024 * 1024) -> Iterator[bytes]:
        """The object's bytes, in chunks of at most `chunk_size`: never all in memory.
        UploadGone when there is no object at `key`."""
        with _translated("GetObject"):
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

    def presign_get_object(
        self,
        key: str,
        *,
        expires_in: int,
        content_disposition: str = "",
        content_type: str = "",
    ) -> str:
        """A presigned GET of the object at `key`, valid `expires_in` seconds.

        `content_disposition` and `content_type`, when given, are signed into the URL as
        `response-content-disposition` / `response-content-type`: S3 answers the GET with them,
        whatever the object was stored with (attachment or inline, the original name).
        """
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        if content_type:
            params["ResponseContentType"] = content_type
        with _translated("GetObject (presign)"):
            return str(
                self.presign_client.generate_presigned_url(
                    "get_object", Params=params, ExpiresIn=expires_in
                )
            )

    def delete_object(self, key: str) -> None:
        """Delete the object at `key`; an object already gone counts as deleted (S3 answers
        DeleteObject alike whether or not the key existed)."""
        try:
            with _translated("DeleteObject"):
                self.client.delete_object(Bucket=self.bucket, Key=key)
        except UploadGone:
            return

    # --- the bucket (setup_storage, the admin) ------------------------------------------------
    def head_bucket(self) -> bool:
        """True when the bucket exists (and these credentials may use it)."""
        try:
            with _translated("HeadBucket"):
                self.client.head_bucket(Bucket=self.bucket)
        except UploadGone:
            return False
        return True

    def create_bucket(self) -> bool:
        """Create the bucket if it does not exist; True when it was created."""
        if self.head_bucket():
            return False
        params: dict[str, Any] = {"Bucket": self.bucket}
        region = self.client.meta.region_name
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        with _translated("CreateBucket"):
            self.client.create_bucket(**params)
        return True

    def put_bucket_cors(
        self, origins: Iterable[str], *, other_rules: Sequence[CorsRule] = ()
    ) -> None:
        """Allow browsers on `origins` to PUT parts, and expose ETag so they can read it.

        PutBucketCors replaces the whole configuration: `other_rules` are the bucket's rules
        that are not Partwise's, written back unchanged.
        """
        rules = [cors_rule_to_s3(rule) for rule in (cors_rule(origins), *other_rules)]
        with _translated("PutBucketCors"):
            self.client.put_bucket_cors(Bucket=self.bucket, CORSConfiguration={"CORSRules": rules})

    def get_bucket_cors(self) -> list[CorsRule]:
        """The bucket's CORS rules; empty when it has none."""
        try:
            with _translated("GetBucketCors"):
                documents = self.client.get_bucket_cors(Bucket=self.bucket)["CORSRules"]
        except StorageRefused as error:
            if error.s3_code in _NO_RULES_CODES:
                return []
            raise
        return [cors_rule_from_s3(document) for document in documents]

    def put_bucket_lifecycle_configuration(
        self, *, prefix: str, days: int, other_rules: Sequence[LifecycleRule] = ()
    ) -> None:
        """The safety net: S3 itself aborts multipart uploads under `prefix` after `days`.

        The call replaces every lifecycle rule: `other_rules` are written back unchanged.
        """
        rules: list[LifecycleRuleTypeDef | LifecycleRuleOutputTypeDef] = [
            rule.document for rule in (lifecycle_rule(prefix=prefix, days=days), *other_rules)
        ]
        with _translated("PutBucketLifecycleConfiguration"):
            self.client.put_bucket_lifecycle_configuration(
                Bucket=self.bucket, LifecycleConfiguration={"Rules": rules}
            )

    def get_bucket_lifecycle_configuration(self) -> list[LifecycleRule]:
        """The bucket's lifecycle rules; empty when it has none."""
        try:
            with _translated("GetBucketLifecycleConfiguration"):
                response = self.client.get_bucket_lifecycle_configuration(Bucket=self.bucket)
        except (StorageRefused, UploadGone) as error:
            if error.s3_code in _NO_RULES_CODES:
                return []
            raise
        return [lifecycle_rule_from_s3(document) for document in response["Rules"]]


# --- building clients ----------------------------------------------------------------------
_lock = threading.Lock()
# Keyed by the bucket, endpoints, region and keys they were built for.
_storages: dict[tuple[str | None, ...], MultipartStorage] = {}


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
