"""The one seam around S3: the only module that imports boto3/botocore.

`MultipartStorage` has one method per S3 operation, named after it, taking and returning plain
values (frozen dataclasses, strings). Every botocore error becomes `StorageFailed` carrying S3's
error code. `get_storage()` builds the clients on first use, never at import, so moto (in unit
tests) and SeaweedFS (in integration tests) are reached by changing settings only.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
import botocore.auth
from botocore.auth import SIGV4_TIMESTAMP, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
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


@dataclass(frozen=True)
class PartToPresign:
    """One part of a batch to presign: its number, and the length and checksum to bind."""

    number: int
    content_length: int | None = None
    checksum_sha256: str = ""


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


# --- fast presigning ------------------------------------------------------------------------
# Uploads whose signing template is kept (a few hundred bytes each): a batch-of-1 signer (the
# CLI, Uppy) pays boto3's full path once per upload instead of once per part.
SIGNER_CACHE_SIZE = 1024


def _part_headers(part: PartToPresign) -> dict[str, str]:
    """What the client must send with the part besides the body (and its Content-Length)."""
    return {CHECKSUM_HEADER: part.checksum_sha256} if part.checksum_sha256 else {}


class _BatchQueryAuth(S3SigV4QueryAuth):
    """botocore's S3 query-string SigV4 signer, for a batch of URLs signed at one moment.

    Only the bookkeeping differs from `add_auth`: the timestamp is the batch's, and the signing
    key, which depends on the date alone, is derived once per batch (botocore's own derivation,
    memoised: `_sign` is a pure HMAC).
    """

    def __init__(
        self, credentials: Any, service_name: str, region_name: str, *, expires: int, timestamp: str
    ) -> None:
        super().__init__(credentials, service_name, region_name, expires=expires)
        self.timestamp = timestamp
        self._derived: dict[tuple[bytes, str], bytes] = {}

    def _sign(self, key: bytes, msg: str, hex: bool = False) -> Any:
        if hex:
            return super()._sign(key, msg, hex=True)
        derived = self._derived.get((key, msg))
        if derived is None:
            derived = self._derived[(key, msg)] = super()._sign(key, msg)
        return derived

    def _request(self, url: str, headers: dict[str, str]) -> AWSRequest:
        request = AWSRequest(method="PUT", url=url, headers=headers)
        request.context["timestamp"] = self.timestamp
        return request

    def prepare(self, url: str, headers: dict[str, str]) -> str:
        """add_auth's first step: the URL with the auth parameters, not signed yet."""
        request = self._request(url, headers)
        self._modify_request_before_signing(request)
        return request.url

    def sign_prepared(self, url: str, headers: dict[str, str]) -> str:
        """add_auth's other steps: canonical request, string to sign, signature."""
        request = self._request(url, headers)
        canonical_request = self.canonical_request(request)
        signature = self.signature(self.string_to_sign(request, canonical_request), request)
        self._inject_signature_to_request(request, signature)
        return request.url


@dataclass(frozen=True)
class _FastPartSigner:
    """Presigns the UploadPart URLs of one upload with botocore's signer and nothing else.

    boto3's `generate_presigned_url` spends most of its ~200 us per URL on work whose result is
    the same for every part of an upload: emitting events, validating and serialising the
    parameters, resolving the endpoint through the rules engine, re-encoding the query string.
    Here that work is done once: boto3 presigns part 1 of the upload (the template: its URL
    holds the endpoint, path, operation query and signing scope exactly as boto3 builds them),
    botocore's `_modify_request_before_signing` builds the query once per batch and header set,
    and each part then only goes through botocore's canonical request, string to sign and
    signature. No SigV4 step is written here. `build` signs the template again this way and
    gives up (None: boto3 signs every part) unless the result is the template byte for byte.
    """

    client: Any
    base_url: str  # scheme://host/path, as boto3 resolved and encoded it
    operation_query: str  # the encoded operation parameters, with partNumber=1
    host: str
    region: str
    service: str

    @classmethod
    def build(cls, client: Any, *, template_url: str) -> _FastPartSigner | None:
        base_url, _, query = template_url.partition("?")
        pairs = query.split("&")
        params = dict(pair.partition("=")[::2] for pair in pairs)
        scope = unquote(params.get("X-Amz-Credential", "")).split("/")
        operation = [pair for pair in pairs if not pair.startswith("X-Amz-")]
        if (
            params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256"
            or len(scope) != 5
            or "partNumber=1" not in operation
            or _frozen_credentials(client) is None
        ):
            return None
        host_of = S3SigV4QueryAuth(None, scope[3], scope[2]).headers_to_sign
        signer = cls(
            client=client,
            base_url=base_url,
            operation_query="&".join(operation),
            host=host_of(AWSRequest(method="PUT", url=template_url))["host"],
            region=scope[2],
            service=scope[3],
        )
        again = signer.sign(
            [PartToPresign(1)],
            expires_in=int(params.get("X-Amz-Expires", "0")),
            timestamp=params.get("X-Amz-Date", ""),
        )
        if again != [template_url]:
            logger.warning("fast presigning differs from boto3 here; boto3 signs every part")
            return None
        return signer

    def sign(
        self, parts: Sequence[PartToPresign], *, expires_in: int, timestamp: str | None = None
    ) -> list[str] | None:
        """The parts' URLs signed at `timestamp` (now); None when there are no credentials."""
        credentials = _frozen_credentials(self.client)  # per batch: refreshable ones refresh
        if credentials is None:
            return None
        if timestamp is None:
            timestamp = botocore.auth.get_current_datetime().strftime(SIGV4_TIMESTAMP)
        auth = _BatchQueryAuth(
            credentials, self.service, self.region, expires=expires_in, timestamp=timestamp
        )
        unsigned = f"{self.base_url}?{self.operation_query}"
        around: dict[tuple[bool, bool], tuple[str, str]] = {}
        urls = []
        for part in parts:
            headers = {"host": self.host}
            if part.content_length is not None:
                headers["Content-Length"] = str(part.content_length)
            if part.checksum_sha256:
                headers[CHECKSUM_HEADER] = part.checksum_sha256
            shape = (part.content_length is not None, bool(part.checksum_sha256))
            if shape not in around:
                # The prepared query differs between parts only by the part number.
                around[shape] = _around_part_number(auth.prepare(unsigned, headers))
            head, tail = around[shape]
            urls.append(auth.sign_prepared(f"{head}{part.number}{tail}", headers))
        return urls


def _around_part_number(url: str) -> tuple[str, str]:
    """The URL before and after the 1 of "partNumber=1"."""
    base, _, query = url.partition("?")
    pairs = query.split("&")
    at = pairs.index("partNumber=1")
    head = "&".join([*pairs[:at], "partNumber="])
    tail = "".join(f"&{pair}" for pair in pairs[at + 1 :])
    return f"{base}?{head}", tail


def _frozen_credentials(client: Any) -> Any:
    """The client's credentials as they are now (None when it signs nothing)."""
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    return credentials.get_frozen_credentials() if credentials is not None else None


class MultipartStorage:
    """S3 multipart operations on one bucket."""

    def __init__(self, client: S3Client, bucket: str, *, presign_client: S3Client | None = None):
        self.client = client
        self.bucket = bucket
        # Presigned URLs name the endpoint that browsers reach, which may differ from ours.
        self.presign_client = presign_client or client
        # Per upload (key, S3 upload id): its fast part signer, most recently used last.
        self._signers: OrderedDict[tuple[str, str], _FastPartSigner | None] = OrderedDict()
        self._signers_lock = threading.Lock()

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
        part = PartToPresign(number, content_length, checksum_sha256)
        return self.presign_upload_parts(key, upload_id, [part], expires_in=expires_in)[0]

    def presign_upload_parts(
        self, key: str, upload_id: str, parts: Sequence[PartToPresign], *, expires_in: int
    ) -> list[PresignedPart]:
        """presign_upload_part for a batch of parts of one upload, in the order given.

        The URLs are exactly boto3's `generate_presigned_url("upload_part", …)` for the same
        moment, but cost a fraction of it: see `_FastPartSigner`.
        """
        if not parts:
            return []
        signer = self._part_signer(key, upload_id)
        if signer is not None:
            urls = signer.sign(parts, expires_in=expires_in)
            if urls is not None:
                pairs = zip(parts, urls, strict=True)
                return [PresignedPart(url, _part_headers(part)) for part, url in pairs]
        return [
            PresignedPart(
                self._boto3_presign(key, upload_id, part, expires_in), _part_headers(part)
            )
            for part in parts
        ]

    def _boto3_presign(self, key: str, upload_id: str, part: PartToPresign, expires_in: int) -> str:
        """The reference: boto3's generate_presigned_url (events, endpoint rules, validation)."""
        params: dict[str, Any] = {
            "Bucket": self.bucket,
            "Key": key,
            "UploadId": upload_id,
            "PartNumber": part.number,
        }
        if part.content_length is not None:
            params["ContentLength"] = part.content_length
        if part.checksum_sha256:
            params["ChecksumSHA256"] = part.checksum_sha256
        return self.presign_client.generate_presigned_url(
            "upload_part", Params=params, ExpiresIn=expires_in
        )

    def _part_signer(self, key: str, upload_id: str) -> _FastPartSigner | None:
        """The cached fast signer of one upload (None: this client needs boto3's full path)."""
        cache_key = (key, upload_id)
        with self._signers_lock:
            if cache_key in self._signers:
                self._signers.move_to_end(cache_key)
                return self._signers[cache_key]
        signer = _FastPartSigner.build(
            self.presign_client,
            template_url=self._boto3_presign(key, upload_id, PartToPresign(1), 900),
        )
        with self._signers_lock:
            self._signers[cache_key] = signer
            while len(self._signers) > SIGNER_CACHE_SIZE:
                self._signers.popitem(last=False)
        return signer

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
