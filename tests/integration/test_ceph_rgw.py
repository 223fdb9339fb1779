"""Ceph RGW (Debian's radosgw 16.2) as a second real S3 server: what it does with our requests.

The fixture is tests/support/ceph_rgw.py (one mon, one memstore OSD, radosgw on loopback).
These tests first check a plain multipart round trip, then pin down, one behaviour per test,
how this RGW answers presigned UploadPart requests and the multipart calls around them, so
that a change in a later Ceph shows up here as a failing test rather than as a surprise.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import google_crc32c
import pytest
import requests
from botocore.exceptions import ClientError

from tests.s3server import client_of
from tests.support.ceph_rgw import CephRGW, ceph_rgw, missing_binaries  # noqa: F401 (fixture)
from tests.support.checksums import etag_of, sha256_b64
from tests.support.presigned import put_to_url

MiB = 1024 * 1024
PART = 5 * MiB
TAIL = b"the last, short part"
BODY = os.urandom(PART)  # one part's bytes, shared by the tests (random: nothing compresses)
ORIGIN = "http://app.example"


@pytest.fixture(scope="module")
def s3(ceph_rgw) -> Any:  # noqa: F811 (the fixture imported above)
    return client_of(ceph_rgw)


@pytest.fixture
def bucket(s3) -> str:
    name = f"pw-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def crc32c_b64(data: bytes) -> str:
    return base64.b64encode(google_crc32c.value(data).to_bytes(4, "big")).decode()


def multipart_etag(*parts: bytes) -> str:
    digests = b"".join(hashlib.md5(p, usedforsecurity=False).digest() for p in parts)
    return f"{hashlib.md5(digests, usedforsecurity=False).hexdigest()}-{len(parts)}"


def error_of(call: Callable[..., Any], **params: Any) -> tuple[int, str]:
    """(HTTP status, S3 error code) of a boto3 call that must fail."""
    with pytest.raises(ClientError) as raised:
        call(**params)
    response = raised.value.response
    return response["ResponseMetadata"]["HTTPStatusCode"], response["Error"]["Code"]


def error_code(response: requests.Response) -> str | None:
    start, end = response.text.find("<Code>"), response.text.find("</Code>")
    return response.text[start + 6 : end] if start >= 0 else None


class Upload:
    """One multipart upload in `bucket`, with presigned UploadPart URLs sent by `requests`."""

    def __init__(self, s3: Any, bucket: str, **create: Any) -> None:
        self.s3, self.bucket, self.key = s3, bucket, f"obj-{uuid.uuid4().hex[:8]}"
        made = s3.create_multipart_upload(Bucket=bucket, Key=self.key, **create)
        self.id: str = made["UploadId"]

    @property
    def ids(self) -> dict[str, str]:
        return {"Bucket": self.bucket, "Key": self.key, "UploadId": self.id}

    def put(
        self, number: int, body: bytes, signed: dict[str, Any], sent: dict[str, str]
    ) -> requests.Response:
        """PUT `body` to a URL presigned with `signed` params, sending the `sent` headers."""
        url = self.s3.generate_presigned_url(
            "upload_part", Params={**self.ids, "PartNumber": number, **signed}, ExpiresIn=600
        )
        return put_to_url({"url": url, "headers": sent}, body)

    def part(self, number: int, body: bytes) -> str:
        """Upload a part through boto3 itself; its ETag."""
        put = self.s3.upload_part(**self.ids, PartNumber=number, Body=body)
        return str(put["ETag"])

    def parts(self) -> list[dict[str, Any]]:
        return list(self.s3.list_parts(**self.ids).get("Parts", []))

    def complete(self, etags: list[str]) -> dict[str, Any]:
        listed = [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(etags, 1)]
        return dict(
            self.s3.complete_multipart_upload(**self.ids, MultipartUpload={"Parts": listed})
        )


# --- the round trip ----------------------------------------------------------------------------


def test_a_two_part_upload_reads_back_byte_identical(s3, bucket, ceph_rgw) -> None:  # noqa: F811
    upload = Upload(s3, bucket)
    etags = [upload.part(1, BODY), upload.part(2, TAIL)]
    upload.complete(etags)
    got = s3.get_object(Bucket=bucket, Key=upload.key)
    assert got["Body"].read() == BODY + TAIL
    assert got["ContentLength"] == PART + len(TAIL)
    assert got["ETag"] == f'"{multipart_etag(BODY, TAIL)}"'
    assert ceph_rgw.started_in is not None
    assert ceph_rgw.started_in < 60


def test_presigned_parts_complete_into_the_object(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    etags = []
    for number, body in ((1, BODY), (2, TAIL)):
        put = upload.put(number, body, {"ContentLength": len(body)}, {})
        assert put.status_code == 200, put.text
        etags.append(put.headers["ETag"])
    upload.complete(etags)
    assert s3.get_object(Bucket=bucket, Key=upload.key)["Body"].read() == BODY + TAIL


# --- (a) Content-MD5 is verified ---------------------------------------------------------------


def test_a_signed_content_md5_that_matches_is_accepted(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    md5 = md5_b64(BODY)
    put = upload.put(1, BODY, {"ContentLength": PART, "ContentMD5": md5}, {"Content-MD5": md5})
    assert put.status_code == 200, put.text
    assert put.headers["ETag"] == f'"{etag_of(BODY)}"'


def test_a_signed_content_md5_that_differs_is_refused_with_bad_digest(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    wrong = md5_b64(b"x" + BODY[1:])  # the digest of other bytes of the same length
    put = upload.put(1, BODY, {"ContentLength": PART, "ContentMD5": wrong}, {"Content-MD5": wrong})
    assert (put.status_code, error_code(put)) == (400, "BadDigest")
    assert upload.parts() == []


# --- (b) x-amz-checksum-* are signed but not verified ------------------------------------------

CHECKSUMS = {
    "SHA256": ("ChecksumSHA256", "x-amz-checksum-sha256", sha256_b64),
    "CRC32C": ("ChecksumCRC32C", "x-amz-checksum-crc32c", crc32c_b64),
}


@pytest.mark.parametrize("algorithm", CHECKSUMS)
@pytest.mark.parametrize("right", [True, False], ids=["right", "wrong"])
def test_b_a_signed_checksum_is_not_verified(s3, bucket, algorithm, right) -> None:
    """Pacific predates the flexible checksums: right or wrong, the part is taken as sent."""
    param, header, digest = CHECKSUMS[algorithm]
    upload = Upload(s3, bucket, ChecksumAlgorithm=algorithm)
    value = digest(BODY if right else BODY + b"other")
    put = upload.put(1, BODY, {"ContentLength": PART, param: value}, {header: value})
    assert put.status_code == 200, put.text  # a wrong checksum too
    assert not any(name.startswith("x-amz-checksum") for name in put.headers)
    [part] = upload.parts()
    assert part["ETag"] == f'"{etag_of(BODY)}"'
    assert not any(name.startswith("Checksum") for name in part)


def test_b_a_checksum_header_other_than_the_signed_one_fails_the_signature(s3, bucket) -> None:
    upload = Upload(s3, bucket, ChecksumAlgorithm="SHA256")
    signed = {"ContentLength": PART, "ChecksumSHA256": sha256_b64(BODY)}
    for sent in ({"x-amz-checksum-sha256": sha256_b64(b"other")}, {}):
        put = upload.put(1, BODY, signed, sent)
        assert (put.status_code, error_code(put)) == (403, "SignatureDoesNotMatch")
    assert upload.parts() == []


# --- (c) the signed Content-Length binds the body's length -------------------------------------


@pytest.mark.parametrize(
    "body", [BODY + b"!", BODY[:-1], b""], ids=["one-byte-long", "one-byte-short", "empty"]
)
def test_c_a_body_of_another_length_fails_the_signature(s3, bucket, body) -> None:
    upload = Upload(s3, bucket)
    put = upload.put(1, body, {"ContentLength": PART}, {})  # requests sends len(body)
    assert (put.status_code, error_code(put)) == (403, "SignatureDoesNotMatch")
    assert upload.parts() == []
    assert upload.put(1, BODY, {"ContentLength": PART}, {}).status_code == 200
    assert [p["Size"] for p in upload.parts()] == [PART]


# --- (d) ListParts ------------------------------------------------------------------------------


def test_d_list_parts_gives_quoted_hex_md5_etags_and_no_checksums(s3, bucket) -> None:
    upload = Upload(s3, bucket, ChecksumAlgorithm="SHA256")
    upload.part(1, BODY)
    upload.part(2, TAIL)
    parts = upload.parts()
    assert [(p["PartNumber"], p["Size"], p["ETag"]) for p in parts] == [
        (1, PART, f'"{etag_of(BODY)}"'),
        (2, len(TAIL), f'"{etag_of(TAIL)}"'),
    ]
    assert not any(name.startswith("Checksum") for part in parts for name in part)
    listed = s3.list_parts(**upload.ids)
    assert "ChecksumAlgorithm" not in listed  # the upload's algorithm is not kept either


# --- (e) Complete, and after Abort ----------------------------------------------------------


def test_e_complete_answers_an_empty_etag(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    etags = [upload.part(1, BODY), upload.part(2, TAIL)]
    assert upload.complete(etags)["ETag"] == ""  # empty: read it from HeadObject
    head = s3.head_object(Bucket=bucket, Key=upload.key)
    assert head["ETag"] == f'"{multipart_etag(BODY, TAIL)}"'
    # Completing again is accepted, and then it gives the ETag, unquoted.
    assert upload.complete(etags)["ETag"] == multipart_etag(BODY, TAIL)
    # The upload itself is gone: ListParts says NoSuchKey, Abort NoSuchUpload.
    assert error_of(s3.list_parts, **upload.ids) == (404, "NoSuchKey")
    assert error_of(s3.abort_multipart_upload, **upload.ids) == (404, "NoSuchUpload")


def test_e_after_an_abort(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    etag = upload.part(1, BODY)
    s3.abort_multipart_upload(**upload.ids)
    assert error_of(s3.list_parts, **upload.ids) == (404, "NoSuchKey")  # not NoSuchUpload
    assert error_of(s3.head_object, Bucket=bucket, Key=upload.key) == (404, "404")
    assert error_of(s3.abort_multipart_upload, **upload.ids) == (404, "NoSuchUpload")
    assert error_of(s3.upload_part, **upload.ids, PartNumber=2, Body=TAIL) == (
        404,
        "NoSuchUpload",
    )
    # Complete answers a 500 (message "This multipart completion is already in progress").
    parts = {"Parts": [{"PartNumber": 1, "ETag": etag}]}
    assert error_of(s3.complete_multipart_upload, **upload.ids, MultipartUpload=parts) == (
        500,
        "InternalError",
    )
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_e_an_upload_id_never_created(s3, bucket) -> None:
    ids = {"Bucket": bucket, "Key": "never", "UploadId": "2~" + secrets.token_urlsafe(24)}
    assert error_of(s3.list_parts, **ids) == (404, "NoSuchKey")
    assert error_of(s3.abort_multipart_upload, **ids) == (404, "NoSuchUpload")
    parts = {"Parts": [{"PartNumber": 1, "ETag": f'"{etag_of(BODY)}"'}]}
    assert error_of(s3.complete_multipart_upload, **ids, MultipartUpload=parts) == (
        500,
        "InternalError",
    )


# --- (f) part sizes -------------------------------------------------------------------------


def test_f_unequal_non_final_parts_are_accepted(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    bodies = [BODY, BODY + b"!", TAIL]
    upload.complete([upload.part(n, body) for n, body in enumerate(bodies, 1)])
    assert s3.get_object(Bucket=bucket, Key=upload.key)["Body"].read() == b"".join(bodies)


def test_f_a_non_final_part_under_5_mib_is_entity_too_small(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    etags = [upload.part(1, TAIL), upload.part(2, BODY)]
    assert error_of(upload.complete, etags=etags) == (400, "EntityTooSmall")


def test_f_an_etag_other_than_the_parts_is_invalid_part(s3, bucket) -> None:
    upload = Upload(s3, bucket)
    upload.part(1, BODY)
    assert error_of(upload.complete, etags=[f'"{"0" * 32}"']) == (400, "InvalidPart")


# --- (g) CORS and lifecycle ------------------------------------------------------------------

CORS = {
    "CORSRules": [
        {
            "AllowedOrigins": [ORIGIN],
            "AllowedMethods": ["PUT", "GET"],
            "AllowedHeaders": ["*"],
            "ExposeHeaders": ["ETag"],
            "MaxAgeSeconds": 600,
        }
    ]
}


def preflight(endpoint: str, bucket: str, origin: str) -> requests.Response:
    return requests.options(
        f"{endpoint}/{bucket}/some-key",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type,x-amz-checksum-sha256",
        },
        timeout=10,
    )


def test_g_bucket_cors_answers_preflights(s3, bucket, ceph_rgw) -> None:  # noqa: F811
    assert preflight(ceph_rgw.endpoint, bucket, ORIGIN).status_code == 403  # no CORS yet
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration=CORS)
    assert s3.get_bucket_cors(Bucket=bucket)["CORSRules"][0]["AllowedOrigins"] == [ORIGIN]
    allowed = preflight(ceph_rgw.endpoint, bucket, ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers["Access-Control-Allow-Methods"] == "PUT"
    assert allowed.headers["Access-Control-Allow-Headers"] == "content-type,x-amz-checksum-sha256"
    assert allowed.headers["Access-Control-Expose-Headers"] == "ETag"
    other = preflight(ceph_rgw.endpoint, bucket, "http://elsewhere.example")
    assert (other.status_code, error_code(other)) == (403, "AccessDenied")


LIFECYCLE = {
    "Rules": [
        {
            "ID": "abort-incomplete",
            "Status": "Enabled",
            "Filter": {"Prefix": ""},
            "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
        }
    ]
}


def test_g_lifecycle_takes_abort_incomplete_multipart_upload(s3, bucket) -> None:
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration=LIFECYCLE)
    [rule] = s3.get_bucket_lifecycle_configuration(Bucket=bucket)["Rules"]
    assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 1}
    assert rule.get("Prefix") == ""  # given as Filter, answered as the older top-level Prefix


@pytest.fixture
def fast_lifecycle_rgw(tmp_path_factory) -> Iterator[CephRGW]:
    """A second cluster of its own, in which a lifecycle "day" lasts 5 s."""
    if missing_binaries():
        pytest.skip("Ceph RGW not installed")
    server = CephRGW.on_free_ports(
        tmp_path_factory.mktemp("rgw-lc"),
        access_key="lc" + secrets.token_hex(8),
        secret_key=secrets.token_urlsafe(30),
        rgw_options={"rgw lc debug interval": "5"},
    )
    try:
        yield server
    finally:
        server.stop(timeout=1)  # its radosgw's lifecycle thread holds up a SIGTERM for ~2 s


def test_g_lifecycle_aborts_incomplete_uploads(ceph_rgw, fast_lifecycle_rgw) -> None:  # noqa: F811
    """The rule is carried out, not only stored (also: two clusters run side by side)."""
    s3 = client_of(fast_lifecycle_rgw)
    s3.create_bucket(Bucket="lc-bucket")
    s3.put_bucket_lifecycle_configuration(Bucket="lc-bucket", LifecycleConfiguration=LIFECYCLE)
    upload = Upload(s3, "lc-bucket")
    upload.part(1, TAIL)
    deadline = time.monotonic() + 60
    while s3.list_multipart_uploads(Bucket="lc-bucket").get("Uploads"):
        assert time.monotonic() < deadline, "the lifecycle rule never aborted the upload"
        time.sleep(0.5)
    assert error_of(s3.abort_multipart_upload, **upload.ids) == (404, "NoSuchUpload")
    assert client_of(ceph_rgw).list_buckets()["Buckets"] is not None  # the other one still up
