"""Fast presigning gives exactly boto3's URLs, byte for byte, for the same moment and parameters.

`presign_upload_parts` skips boto3's per-call machinery (see `uploads/storage/presign.py`);
these tests freeze botocore's clock and compare every URL with boto3's
`generate_presigned_url("upload_part", …)` on the same client: with and without a signed
length and checksum, for a public endpoint other than the internal one, for AWS's own
endpoints, with temporary credentials, and for keys that need percent-encoding. A URL S3
accepts is proven against SeaweedFS in tests/integration/test_fast_presign.py.
"""

from datetime import datetime
from typing import Any

import boto3
import pytest
from botocore import UNSIGNED
from botocore.config import Config

from uploads.storage import MultipartStorage, PartToSign
from uploads.storage import presign as presign_module
from uploads.storage import s3 as s3_module
from uploads.storage.s3 import _client

FROZEN = datetime(2025, 3, 4, 5, 6, 7)  # botocore reads a naive UTC datetime
CHECKSUM = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="  # SHA-256 of b""
KEY = "uploads/6f1c2e4a-93b1-4a57-8a7e-2b1d0c9e5f3a/holiday_movie.mp4"
UPLOAD_ID = "ZjdlNWE0M2QtNjJmNi00ZWE4LWI2YzctMzU2ZmY3ZDlmMzVj/x+y=="


@pytest.fixture
def credentials(settings) -> None:
    settings.AWS_ACCESS_KEY_ID = "AKIAPRESIGNTEST"
    settings.AWS_SECRET_ACCESS_KEY = "secret/with+symbols=="
    settings.AWS_S3_REGION_NAME = "us-east-1"


@pytest.fixture
def frozen_clock(monkeypatch) -> None:
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: FROZEN)


def boto3_url(
    storage: MultipartStorage,
    key: str,
    part: PartToSign,
    expires: int,
    checksum_parameter: str = "ChecksumSHA256",
) -> str:
    """The reference URL, straight from boto3's public API on the storage's presign client."""
    params: dict[str, Any] = {
        "Bucket": storage.bucket,
        "Key": key,
        "UploadId": UPLOAD_ID,
        "PartNumber": part.number,
    }
    if part.size is not None:
        params["ContentLength"] = part.size
    if part.checksum:
        params[checksum_parameter] = part.checksum
    return storage.presign_client.generate_presigned_url(
        "upload_part", Params=params, ExpiresIn=expires
    )


def count_boto3_presigning(storage: MultipartStorage, monkeypatch) -> list[str]:
    """Record each URL the storage has boto3 sign itself (the slow path; the template)."""
    calls: list[str] = []
    real = storage.presign_client.generate_presigned_url

    def counting(*args: Any, **kwargs: Any) -> str:
        calls.append(kwargs["Params"]["Key"])
        return real(*args, **kwargs)

    monkeypatch.setattr(storage.presign_client, "generate_presigned_url", counting)
    return calls


def local_storage(
    endpoint: str | None = "http://127.0.0.1:8333", public: str | None = None
) -> MultipartStorage:
    internal = _client(endpoint)
    presign = _client(public) if public else internal
    return MultipartStorage(internal, "partwise", presign_client=presign)


PART_SHAPES = [
    pytest.param(PartToSign(1), id="no-length-no-checksum"),
    pytest.param(PartToSign(2, size=8 * 1024 * 1024), id="length"),
    pytest.param(PartToSign(3, checksum=CHECKSUM), id="checksum"),
    pytest.param(
        PartToSign(10_000, size=5 * 1024 * 1024, checksum=CHECKSUM), id="length-and-checksum"
    ),
    pytest.param(PartToSign(4, size=0), id="empty-part"),
]


@pytest.mark.parametrize("part", PART_SHAPES)
def test_a_fast_presigned_url_is_byte_identical_to_boto3s(
    credentials, frozen_clock, monkeypatch, part
):
    storage = local_storage()
    boto3_signed = count_boto3_presigning(storage, monkeypatch)
    storage.presign_upload_parts(KEY, UPLOAD_ID, [PartToSign(1)], expires_in=900)
    [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
    assert boto3_signed == [KEY], "boto3 signed more than the upload's template"
    assert fast.url == boto3_url(storage, KEY, part, 900)


@pytest.mark.parametrize(
    ("algorithm", "checksum", "parameter", "header"),
    [
        ("CRC32C", "4waSgw==", "ChecksumCRC32C", "x-amz-checksum-crc32c"),
        ("MD5", "JfnnlDI7RTiF9RgfG2JNCw==", "ContentMD5", "Content-MD5"),
    ],
)
def test_crc32c_and_md5_parts_sign_their_digest_as_a_header_byte_identical_to_boto3(
    credentials, frozen_clock, algorithm, checksum, parameter, header
):
    storage = local_storage()
    parts = [PartToSign(1), PartToSign(2, size=5 * 1024 * 1024, checksum=checksum)]
    fast = storage.presign_upload_parts(
        KEY, UPLOAD_ID, parts, expires_in=900, checksum_algorithm=algorithm
    )
    assert [signed.url for signed in fast] == [
        boto3_url(storage, KEY, part, 900, parameter) for part in parts
    ]
    assert fast[1].headers == {header: checksum}
    signed_headers = fast[1].url.split("X-Amz-SignedHeaders=")[1].split("&")[0]
    assert header.lower() in signed_headers.replace("%3B", ";").split(";")
    query = dict(pair.split("=", 1) for pair in fast[1].url.split("?", 1)[1].split("&"))
    assert set(query) == {
        p for p in query if p in ("uploadId", "partNumber") or p.startswith("X-Amz-")
    }
    assert not any(name.lower().startswith(("x-amz-checksum", "content-md5")) for name in query)


@pytest.mark.parametrize("part", PART_SHAPES)
def test_a_url_for_a_public_endpoint_other_than_the_internal_one_is_boto3s(
    credentials, frozen_clock, part
):
    storage = local_storage("http://seaweedfs:8333", public="https://files.example.org:8443")
    [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=600)
    assert fast.url.startswith("https://files.example.org:8443/partwise/uploads/")
    assert fast.url == boto3_url(storage, KEY, part, 600)


def test_a_batch_of_a_thousand_mixed_parts_matches_boto3_url_by_url(credentials, frozen_clock):
    storage = local_storage(public="http://127.0.0.1:9000")
    parts = [
        PartToSign(
            number,
            size=None if number % 5 == 0 else 8 * 1024 * 1024,
            checksum=CHECKSUM if number % 2 else "",
        )
        for number in range(1, 1001)
    ]
    fast = storage.presign_upload_parts(KEY, UPLOAD_ID, parts, expires_in=900)
    assert [signed.url for signed in fast] == [boto3_url(storage, KEY, p, 900) for p in parts]
    assert [signed.headers for signed in fast] == [
        {"x-amz-checksum-sha256": CHECKSUM} if p.checksum else {} for p in parts
    ]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("uploads/a/b c~d+e%f&g=h.bin", id="reserved-characters"),
        pytest.param("uploads/a/r\u00e9sum\u00e9_\u65e5\u672c.pdf", id="unicode"),
        pytest.param("uploads/a//double-slash", id="double-slash"),
    ],
)
def test_keys_that_need_percent_encoding_sign_as_boto3_does(credentials, frozen_clock, key):
    storage = local_storage()
    part = PartToSign(7, size=1234, checksum=CHECKSUM)
    [fast] = storage.presign_upload_parts(key, UPLOAD_ID, [part], expires_in=900)
    assert fast.url == boto3_url(storage, key, part, 900)


@pytest.mark.parametrize(
    ("region", "bucket"),
    [
        pytest.param("us-east-1", "partwise", id="aws-us-east-1-virtual-host"),
        pytest.param("eu-west-1", "partwise", id="aws-eu-west-1-virtual-host"),
        pytest.param("eu-west-1", "partwise.with.dots", id="aws-dotted-bucket-path-style"),
    ],
)
def test_urls_for_aws_endpoints_are_boto3s(settings, credentials, frozen_clock, region, bucket):
    settings.AWS_S3_REGION_NAME = region
    client = _client(None)
    storage = MultipartStorage(client, bucket)
    part = PartToSign(2, size=8 * 1024 * 1024, checksum=CHECKSUM)
    [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
    assert "amazonaws.com" in fast.url
    assert fast.url == boto3_url(storage, KEY, part, 900)


def test_temporary_credentials_sign_their_session_token_as_boto3_does(credentials, frozen_clock):
    storage = local_storage()
    storage.presign_client._request_signer._credentials.token = "session/token+=="
    part = PartToSign(1, size=10, checksum=CHECKSUM)
    [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
    assert "X-Amz-Security-Token=session%2Ftoken%2B%3D%3D" in fast.url
    assert fast.url == boto3_url(storage, KEY, part, 900)


def test_rotated_credentials_are_used_from_the_next_batch_on(credentials, frozen_clock):
    storage = local_storage()
    part = PartToSign(1, size=10)
    storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)  # signer cached
    rotated = storage.presign_client._request_signer._credentials
    rotated.access_key, rotated.secret_key = "AKIAROTATED", "another-secret"
    [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
    assert "AKIAROTATED" in fast.url
    assert fast.url == boto3_url(storage, KEY, part, 900)


def test_the_url_carries_the_moment_of_signing(credentials, monkeypatch):
    storage = local_storage()
    for moment in (datetime(2025, 3, 4, 5, 6, 7), datetime(2025, 3, 5, 0, 0, 1)):
        monkeypatch.setattr("botocore.auth.get_current_datetime", lambda moment=moment: moment)
        part = PartToSign(3, size=42)
        [fast] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
        assert f"X-Amz-Date={moment:%Y%m%dT%H%M%SZ}" in fast.url
        assert fast.url == boto3_url(storage, KEY, part, 900)


def test_an_unsigned_client_falls_back_to_boto3_for_every_part(
    credentials, frozen_clock, monkeypatch
):
    anonymous = boto3.session.Session().client(
        "s3",
        endpoint_url="http://127.0.0.1:8333",
        config=Config(signature_version=UNSIGNED, region_name="us-east-1"),
    )
    storage = MultipartStorage(anonymous, "partwise")
    parts = [PartToSign(1, size=10), PartToSign(2, size=10)]
    boto3_signed = count_boto3_presigning(storage, monkeypatch)
    fast = storage.presign_upload_parts(KEY, UPLOAD_ID, parts, expires_in=900)
    assert len(boto3_signed) == 1 + len(parts), "the template, then every part"
    assert [signed.url for signed in fast] == [boto3_url(storage, KEY, p, 900) for p in parts]
    assert "X-Amz-Signature" not in fast[0].url


def test_a_fast_signer_that_would_differ_from_boto3_is_never_used(
    credentials, frozen_clock, monkeypatch, caplog
):
    """The template check: a botocore change that broke byte-identity falls back to boto3."""
    original = presign_module._BatchQueryAuth.sign_prepared

    def drifted(self, url, headers):
        return original(self, url, headers) + "0"

    monkeypatch.setattr(presign_module._BatchQueryAuth, "sign_prepared", drifted)
    storage = local_storage()
    part = PartToSign(5, size=10, checksum=CHECKSUM)
    boto3_signed = count_boto3_presigning(storage, monkeypatch)
    [signed] = storage.presign_upload_parts(KEY, UPLOAD_ID, [part], expires_in=900)
    assert len(boto3_signed) == 2, "the template, then the part itself"
    assert signed.url == boto3_url(storage, KEY, part, 900)
    assert "boto3 signs every part" in caplog.text


def test_the_per_upload_signer_cache_keeps_the_most_recent_uploads(
    credentials, frozen_clock, monkeypatch
):
    monkeypatch.setattr(s3_module, "SIGNER_CACHE_SIZE", 3)
    storage = local_storage()
    boto3_signed = count_boto3_presigning(storage, monkeypatch)
    keys = [f"uploads/{index}/f" for index in range(5)]
    for key in keys:
        storage.presign_upload_parts(key, UPLOAD_ID, [PartToSign(1)], expires_in=60)
    boto3_signed.clear()
    for key in reversed(keys):  # the three most recent are cached, the two oldest are not
        storage.presign_upload_parts(key, UPLOAD_ID, [PartToSign(2)], expires_in=60)
    assert boto3_signed == [keys[1], keys[0]]


def test_an_empty_batch_signs_nothing(credentials):
    assert local_storage().presign_upload_parts(KEY, UPLOAD_ID, [], expires_in=900) == []
