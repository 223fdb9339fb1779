"""MultipartStorage, the boto3 seam, against moto's in-process S3."""

import hashlib
from urllib.parse import parse_qs, urlsplit

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, EndpointConnectionError

from tests.support.uploads import upload_part
from uploads.exceptions import (
    CompletionUnknown,
    PartRefused,
    StorageBusy,
    StorageFailed,
    StorageRefused,
    StorageUnreachable,
    UploadGone,
)
from uploads.parts import MiB, PartToSign, SignedPart
from uploads.storage import (
    CHECKSUM_HEADER,
    MultipartStorage,
    StoredObject,
    StoredPart,
    get_storage,
)

KEY = "uploads/0000/movie.mp4"
CHECKSUM = "n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg="  # base64 SHA-256 of b"test"


def _calls(storage: MultipartStorage, operation: str) -> list[dict]:
    """Record the parameters of every `operation` call the storage's client makes."""
    seen: list[dict] = []
    storage.client.meta.events.register(
        f"provide-client-params.s3.{operation}", lambda params, **kw: seen.append(dict(params))
    )
    return seen


def _failing(error: Exception):
    """A stand-in for a client method that fails the way S3 or the network can."""

    def call(**params):
        raise error

    return call


def _presign(
    storage: MultipartStorage,
    key: str,
    s3_upload_id: str,
    number: int,
    *,
    expires_in: int,
    size: int | None = None,
    checksum: str = "",
) -> SignedPart:
    [signed] = storage.presign_upload_parts(
        key, s3_upload_id, [PartToSign(number, size=size, checksum=checksum)], expires_in=expires_in
    )
    return signed


def _query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# --- create -----------------------------------------------------------------------------------
def test_create_multipart_upload_returns_an_upload_id_s3_lists(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="video/mp4")

    assert upload_id
    assert [(u.key, u.s3_upload_id) for u in storage.list_multipart_uploads("uploads/")] == [
        (KEY, upload_id)
    ]


def test_create_multipart_upload_declares_content_type_and_checksum_algorithm(storage):
    calls = _calls(storage, "CreateMultipartUpload")

    storage.create_multipart_upload(KEY, content_type="video/mp4", checksum_algorithm="SHA256")
    storage.create_multipart_upload(KEY + ".2", content_type="")

    assert calls == [
        {
            "Bucket": storage.bucket,
            "Key": KEY,
            "ContentType": "video/mp4",
            "ChecksumAlgorithm": "SHA256",
        },
        {"Bucket": storage.bucket, "Key": KEY + ".2"},
    ]


def test_create_multipart_upload_in_a_missing_bucket_fails_with_s3s_code(s3, settings):
    settings.UPLOADS_BUCKET = "no-such-bucket"

    with pytest.raises(StorageFailed) as caught:
        get_storage().create_multipart_upload(KEY, content_type="")

    assert caught.value.s3_code == "NoSuchBucket"
    assert caught.value.code == "storage_failed"
    assert caught.value.status_code == 502


# --- presign ----------------------------------------------------------------------------------
def test_presigned_part_url_signs_the_content_length_and_the_checksum_header(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="", checksum_algorithm="SHA256")

    signed = _presign(storage, KEY, upload_id, 7, expires_in=600, size=5 * MiB, checksum=CHECKSUM)

    query = _query(signed.url)
    assert query["X-Amz-SignedHeaders"] == f"content-length;host;{CHECKSUM_HEADER}"
    assert query["X-Amz-Expires"] == "600"
    assert (query["partNumber"], query["uploadId"]) == ("7", upload_id)
    assert urlsplit(signed.url).path == f"/{KEY}"
    # The client must send the checksum header as signed; Content-Length comes from the body.
    assert signed.headers == {CHECKSUM_HEADER: CHECKSUM}


def test_presigned_part_url_without_a_checksum_still_binds_the_length(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")

    signed = _presign(storage, KEY, upload_id, 1, expires_in=60, size=0)

    assert _query(signed.url)["X-Amz-SignedHeaders"] == "content-length;host"
    assert signed.headers == {}


def test_presigned_part_url_of_an_unplanned_upload_signs_no_length(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")

    signed = _presign(storage, KEY, upload_id, 1, expires_in=60)

    assert _query(signed.url)["X-Amz-SignedHeaders"] == "host"


def test_presigned_urls_name_the_public_endpoint_with_path_style(bucket, settings):
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = "http://127.0.0.1:9999"
    storage = get_storage()
    upload_id = storage.create_multipart_upload(KEY, content_type="")

    signed = _presign(storage, KEY, upload_id, 1, expires_in=60, size=1)

    assert signed.url.startswith(f"http://127.0.0.1:9999/{bucket}/{KEY}?")
    assert storage.presign_client is not storage.client


def test_a_presigned_url_takes_the_part_body(storage):
    import requests

    upload_id = storage.create_multipart_upload(KEY, content_type="")
    signed = _presign(storage, KEY, upload_id, 1, expires_in=60, size=4)

    put = requests.put(signed.url, data=b"test", headers=signed.headers, timeout=10)

    assert put.status_code == 200
    assert storage.list_parts(KEY, upload_id) == [
        StoredPart(number=1, size=4, etag=hashlib.md5(b"test").hexdigest())  # noqa: S324
    ]


# --- list parts -------------------------------------------------------------------------------
def test_list_parts_of_a_fresh_upload_is_empty(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")

    assert storage.list_parts(KEY, upload_id) == []


def test_list_parts_follows_pages_past_1000_parts(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")
    # S3 only enforces the 5 MiB minimum at completion, so tiny parts list like big ones.
    etags = {n: upload_part(storage, KEY, upload_id, n, b"%d" % n) for n in range(1, 1003)}
    calls = _calls(storage, "ListParts")

    parts = storage.list_parts(KEY, upload_id)

    assert [part.number for part in parts] == list(range(1, 1003))
    assert parts[1001] == StoredPart(number=1002, size=4, etag=etags[1002])
    assert all(not part.etag.startswith('"') for part in parts)
    assert [call["PartNumberMarker"] for call in calls] == [0, 1000]


def test_list_parts_reports_the_part_checksum(storage, monkeypatch):
    # moto's ListParts leaves part checksums out, so S3's answer is given here as AWS sends it.
    page = {"Parts": [{"PartNumber": 1, "Size": 4, "ETag": '"abc"', "ChecksumSHA256": CHECKSUM}]}
    monkeypatch.setattr(storage.client, "list_parts", lambda **params: page)

    assert storage.list_parts(KEY, "upload") == [
        StoredPart(number=1, size=4, etag="abc", checksum=CHECKSUM)
    ]


def test_list_parts_of_an_unknown_upload_fails_with_no_such_upload(storage):
    with pytest.raises(StorageFailed) as caught:
        storage.list_parts(KEY, "no-such-upload")

    assert caught.value.s3_code == "NoSuchUpload"


# --- complete ---------------------------------------------------------------------------------
def _two_parts(storage) -> tuple[str, list[StoredPart], bytes]:
    upload_id = storage.create_multipart_upload(KEY, content_type="video/mp4")
    first, second = b"a" * (5 * MiB), b"tail"
    parts = [
        StoredPart(number=1, size=len(first), etag=upload_part(storage, KEY, upload_id, 1, first)),
        StoredPart(
            number=2, size=len(second), etag=upload_part(storage, KEY, upload_id, 2, second)
        ),
    ]
    return upload_id, parts, first + second


def test_complete_multipart_upload_makes_the_object_and_returns_its_etag(storage):
    upload_id, parts, data = _two_parts(storage)

    etag = storage.complete_multipart_upload(KEY, upload_id, parts)

    assert etag.endswith("-2")
    assert not etag.startswith('"')
    assert storage.head_object(KEY) == StoredObject(size=len(data), etag=etag)
    assert storage.list_multipart_uploads("uploads/") == []


def test_complete_multipart_upload_sends_quoted_etags_and_checksums(storage, monkeypatch):
    calls = []

    def fake(**params):
        calls.append(params)
        return {"ETag": '"abc-2"'}

    monkeypatch.setattr(storage.client, "complete_multipart_upload", fake)

    etag = storage.complete_multipart_upload(
        KEY, "up", [StoredPart(1, 1, "e1"), StoredPart(2, 1, "e2", checksum=CHECKSUM)]
    )

    assert etag == "abc-2"
    assert calls == [
        {
            "Bucket": storage.bucket,
            "Key": KEY,
            "UploadId": "up",
            "MultipartUpload": {
                "Parts": [
                    {"PartNumber": 1, "ETag": '"e1"'},
                    {"PartNumber": 2, "ETag": '"e2"', "ChecksumSHA256": CHECKSUM},
                ]
            },
        }
    ]


def test_completing_twice_answers_the_same_object_as_s3_does(storage):
    upload_id, parts, _ = _two_parts(storage)

    first = storage.complete_multipart_upload(KEY, upload_id, parts)

    assert storage.complete_multipart_upload(KEY, upload_id, parts) == first


def test_completing_an_upload_s3_no_longer_knows_is_completion_unknown(storage, monkeypatch):
    upload_id, parts, _ = _two_parts(storage)
    # moto crashes on an unknown UploadId here; S3 answers 404 NoSuchUpload, as given.
    error = ClientError(
        {
            "Error": {"Code": "NoSuchUpload", "Message": "The upload does not exist."},
            "ResponseMetadata": {"HTTPStatusCode": 404},
        },
        "CompleteMultipartUpload",
    )
    monkeypatch.setattr(storage.client, "complete_multipart_upload", _failing(error))

    with pytest.raises(CompletionUnknown) as caught:
        storage.complete_multipart_upload(KEY, upload_id, parts)

    assert caught.value.s3_code == "NoSuchUpload"


@pytest.mark.parametrize(
    "error",
    [
        ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
    ],
    ids=["connection closed mid-request", "endpoint unreachable"],
)
def test_a_dropped_connection_while_completing_is_completion_unknown(storage, monkeypatch, error):
    upload_id, parts, _ = _two_parts(storage)
    monkeypatch.setattr(storage.client, "complete_multipart_upload", _failing(error))

    with pytest.raises(CompletionUnknown):
        storage.complete_multipart_upload(KEY, upload_id, parts)


def test_s3_refusing_the_part_list_is_a_refusal_with_its_code(storage):
    upload_id, parts, _ = _two_parts(storage)
    wrong = [parts[0], StoredPart(number=2, size=1, etag="0" * 32)]

    with pytest.raises(StorageFailed) as caught:
        storage.complete_multipart_upload(KEY, upload_id, wrong)

    assert type(caught.value) is PartRefused  # a refusal about one of the listed parts
    assert caught.value.s3_code == "InvalidPart"
    assert "InvalidPart" in caught.value.detail


def test_s3_refusing_a_small_middle_part_is_entity_too_small(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")
    parts = [
        StoredPart(number=n, size=5, etag=upload_part(storage, KEY, upload_id, n, b"small"))
        for n in (1, 2)
    ]

    with pytest.raises(StorageFailed) as caught:
        storage.complete_multipart_upload(KEY, upload_id, parts)

    assert caught.value.s3_code == "EntityTooSmall"


# --- abort ------------------------------------------------------------------------------------
def test_abort_multipart_upload_is_idempotent_and_false_once_gone(storage):
    upload_id = storage.create_multipart_upload(KEY, content_type="")
    upload_part(storage, KEY, upload_id, 1, b"bytes")

    assert storage.abort_multipart_upload(KEY, upload_id) is True
    assert storage.list_multipart_uploads("uploads/") == []
    assert storage.abort_multipart_upload(KEY, upload_id) is False


# --- objects and listings ---------------------------------------------------------------------
def test_head_object_is_none_when_there_is_no_object(storage):
    assert storage.head_object(KEY) is None


def test_head_object_reports_size_etag_and_checksum(storage):
    storage.client.put_object(
        Bucket=storage.bucket, Key=KEY, Body=b"test", ChecksumAlgorithm="SHA256"
    )

    assert storage.head_object(KEY) == StoredObject(
        size=4,
        etag=hashlib.md5(b"test").hexdigest(),  # noqa: S324
        checksum=CHECKSUM,
    )


def test_list_multipart_uploads_keeps_to_the_prefix(storage):
    ours = {storage.create_multipart_upload(f"uploads/{n}/f", content_type="") for n in range(3)}
    storage.create_multipart_upload("elsewhere/f", content_type="")

    listed = storage.list_multipart_uploads("uploads/")

    assert {info.s3_upload_id for info in listed} == ours
    assert all(info.key.startswith("uploads/") for info in listed)
    assert all(info.initiated.tzinfo is not None for info in listed)


def test_list_multipart_uploads_follows_pages(storage, monkeypatch):
    pages = iter(
        [
            {
                "Uploads": [{"Key": "uploads/a", "UploadId": "1", "Initiated": None}],
                "IsTruncated": True,
                "NextKeyMarker": "uploads/a",
                "NextUploadIdMarker": "1",
            },
            {"Uploads": [{"Key": "uploads/b", "UploadId": "2", "Initiated": None}]},
        ]
    )
    calls = []

    def fake(**params):
        calls.append(params)
        return next(pages)

    monkeypatch.setattr(storage.client, "list_multipart_uploads", fake)

    listed = storage.list_multipart_uploads("uploads/")

    assert [info.s3_upload_id for info in listed] == ["1", "2"]
    assert calls[1] == {
        "Bucket": storage.bucket,
        "Prefix": "uploads/",
        "KeyMarker": "uploads/a",
        "UploadIdMarker": "1",
    }


# --- bucket set-up ----------------------------------------------------------------------------
def test_create_bucket_is_idempotent(s3, settings):
    settings.UPLOADS_BUCKET = "fresh-bucket"
    storage = get_storage()

    assert storage.create_bucket() is True
    assert storage.create_bucket() is False
    assert storage.head_bucket() is True


def test_bucket_cors_exposes_the_etag_to_the_given_origins(storage):
    storage.put_bucket_cors(["http://127.0.0.1:8000"])

    [rule] = storage.get_bucket_cors()

    assert rule.allowed_origins == ("http://127.0.0.1:8000",)
    assert "PUT" in rule.allowed_methods
    assert "ETag" in rule.expose_headers


def test_bucket_lifecycle_aborts_incomplete_uploads_under_the_prefix(storage):
    storage.put_bucket_lifecycle_configuration(prefix="uploads/", days=7)

    [rule] = storage.get_bucket_lifecycle_configuration()

    assert rule.enabled
    assert rule.prefix == "uploads/"
    assert rule.abort_incomplete_after_days == 7


# --- get_storage ------------------------------------------------------------------------------
def test_get_storage_builds_one_storage_per_settings(bucket):
    first = get_storage()

    assert get_storage() is first
    assert first.bucket == bucket
    assert first.presign_client is first.client


def test_get_storage_is_rebuilt_when_a_setting_changes(bucket, settings):
    first = get_storage()

    settings.UPLOADS_BUCKET = "another-bucket"
    second = get_storage()
    settings.AWS_S3_REGION_NAME = "eu-west-1"
    third = get_storage()

    assert second is not first
    assert second.bucket == "another-bucket"
    assert third.client.meta.region_name == "eu-west-1"


def test_get_storage_uses_standard_retries_and_path_style_for_custom_endpoints(s3, settings):
    settings.AWS_S3_ENDPOINT_URL = "http://127.0.0.1:9"
    settings.AWS_S3_PUBLIC_ENDPOINT_URL = None

    config = get_storage().client.meta.config

    assert config.retries["mode"] == "standard"
    assert config.s3["addressing_style"] == "path"


# --- one translator: what S3 answers becomes one domain error ----------------------------------
def _client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "..."}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "ListParts",
    )


@pytest.mark.parametrize(
    ("error", "expected", "s3_code"),
    [
        (_client_error("NoSuchUpload", 404), UploadGone, "NoSuchUpload"),
        (_client_error("NoSuchKey", 404), UploadGone, "NoSuchKey"),
        (_client_error("", 404), UploadGone, ""),
        (_client_error("SlowDown", 503), StorageBusy, "SlowDown"),
        (_client_error("InternalError", 500), StorageBusy, "InternalError"),
        (_client_error("ServiceUnavailable", 503), StorageBusy, "ServiceUnavailable"),
        (_client_error("SomethingNew", 502), StorageBusy, "SomethingNew"),
        (_client_error("AccessDenied", 403), StorageRefused, "AccessDenied"),
        (_client_error("InvalidPart", 400), StorageRefused, "InvalidPart"),
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), StorageUnreachable, ""),
    ],
    ids=[
        "no such upload",
        "no such key",
        "bare 404",
        "slow down",
        "internal error",
        "unavailable",
        "unknown 5xx",
        "access denied",
        "invalid part",
        "unreachable",
    ],
)
def test_every_s3_failure_leaves_the_seam_as_one_domain_error(
    storage, monkeypatch, error, expected, s3_code
):
    monkeypatch.setattr(storage.client, "list_parts", _failing(error))

    with pytest.raises(StorageFailed) as caught:
        storage.list_parts(KEY, "up")

    assert type(caught.value) is expected
    assert caught.value.s3_code == s3_code
    assert "ListParts" in caught.value.detail
