"""A presigned part URL lets through exactly the bytes it was signed for, and only in time.

moto checks neither signatures, lengths nor checksums; a real S3 server (SeaweedFS) does. Every
URL here comes from the REST API's sign call, and every refusal is confirmed in S3 itself: the
part is not there afterwards, while the right body through the same URL is taken.
"""

import os
import time

import pytest
import requests

from tests.integration.conftest import header_of
from tests.support.presigned import put_signed, put_to_url
from uploads.integrity import part_digest
from uploads.models import Upload

MiB = 1024 * 1024
PART = 5 * MiB


@pytest.fixture
def upload(api_client, real_s3) -> dict:
    """A 10 MiB upload in two 5 MiB parts."""
    response = api_client.post(
        "/api/uploads/",
        {"filename": "scan.tiff", "size": 2 * PART, "part_size": PART},
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


@pytest.fixture
def sha_upload(api_client, real_s3) -> dict:
    """The same, asking for per-part SHA-256 checksums: the answer names the digest the store
    verifies (SHA256 on SeaweedFS, MD5 on Ceph RGW), which the tests then sign."""
    response = api_client.post(
        "/api/uploads/",
        {
            "filename": "scan.tiff",
            "size": 2 * PART,
            "part_size": PART,
            "checksum_algorithm": "SHA256",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    return response.json()


def sign(api_client, upload: dict, **part) -> dict:
    response = api_client.post(
        f"/api/uploads/{upload['id']}/sign/", {"parts": [{"number": 1, **part}]}, format="json"
    )
    assert response.status_code == 200, response.json()
    return response.json()["parts"][0]


def parts_in_s3(storage, upload: dict) -> list[int]:
    s3_upload_id = Upload.objects.get(pk=upload["id"]).s3_upload_id
    return [part.number for part in storage.list_parts(upload["key"], s3_upload_id)]


def assert_refused(response: requests.Response) -> None:
    # S3 answers 403 (signature) or 400 (bad digest); either way, never a 2xx.
    assert response.status_code in {400, 403}, (response.status_code, response.text)


def assert_only_the_signed_body_is_taken(
    storage, upload: dict, signed: dict, other: bytes, body: bytes
) -> None:
    """S3 refuses `other` through the URL and keeps nothing; then takes the signed `body`."""
    assert_refused(put_to_url(signed, other))
    assert parts_in_s3(storage, upload) == []
    put_signed(signed, body)
    assert parts_in_s3(storage, upload) == [1]


@pytest.mark.parametrize(
    "length", [PART - 1, PART + 1, 0], ids=["one-byte-short", "one-byte-long", "empty"]
)
def test_a_part_url_refuses_a_body_of_another_length(api_client, upload, real_s3, length):
    signed = sign(api_client, upload)
    assert signed["size"] == PART

    assert_only_the_signed_body_is_taken(real_s3, upload, signed, b"x" * length, b"x" * PART)


def test_a_part_url_refuses_a_body_that_differs_from_the_signed_checksum(
    api_client, sha_upload, real_s3
):
    good, bad = os.urandom(PART), os.urandom(PART)
    algorithm = sha_upload["checksum_algorithm"]
    signed = sign(api_client, sha_upload, checksum=part_digest(algorithm, good))
    assert signed["headers"] == {header_of(algorithm): part_digest(algorithm, good)}

    # Same length, the signed checksum header, other bytes (a corrupted part).
    assert_only_the_signed_body_is_taken(real_s3, sha_upload, signed, bad, good)


def test_a_part_url_refuses_a_checksum_header_other_than_the_signed_one(
    api_client, sha_upload, real_s3
):
    good, other = os.urandom(PART), os.urandom(PART)
    algorithm = sha_upload["checksum_algorithm"]
    signed = sign(api_client, sha_upload, checksum=part_digest(algorithm, good))

    # Other bytes with their own, correct checksum: the header is signed, so S3 refuses it.
    other_digest = {header_of(algorithm): part_digest(algorithm, other)}
    refused = put_to_url(signed, other, headers=other_digest)

    assert_refused(refused)
    assert parts_in_s3(real_s3, sha_upload) == []


def test_a_part_url_refuses_a_body_sent_without_its_signed_checksum_header(
    api_client, sha_upload, real_s3
):
    good = os.urandom(PART)
    signed = sign(
        api_client, sha_upload, checksum=part_digest(sha_upload["checksum_algorithm"], good)
    )

    refused = put_to_url(signed, good, headers={})

    assert_refused(refused)
    assert parts_in_s3(real_s3, sha_upload) == []


def test_a_part_url_is_refused_after_it_expires(api_client, upload, real_s3, settings):
    settings.UPLOADS_URL_EXPIRY = 1
    body = b"x" * PART
    signed = sign(api_client, upload)
    assert "X-Amz-Expires=1" in signed["url"]

    time.sleep(2.5)
    refused = put_to_url(signed, body)

    assert refused.status_code == 403, refused.text
    assert parts_in_s3(real_s3, upload) == []
    # Signing again is the way out: a fresh URL takes the same bytes.
    settings.UPLOADS_URL_EXPIRY = 900
    put_signed(sign(api_client, upload), body)
    assert parts_in_s3(real_s3, upload) == [1]
