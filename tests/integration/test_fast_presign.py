"""Fast-signed part URLs are accepted by a real S3 (SeaweedFS), and still bind length and checksum.

tests/unit/test_presign.py proves the URLs are boto3's byte for byte; this proves the server
agrees: a whole batch signed at once is taken part by part, while a body of another length,
another checksum, or a URL edited to name another part is refused and leaves nothing in S3.
"""

import base64
import hashlib
import os

import pytest
import requests

from uploads.storage import PartToSign

pytestmark = pytest.mark.integration
KEY = "uploads/fast-presign/data.bin"
SIZE = 64 * 1024


def sha256_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


@pytest.fixture
def s3_upload(real_s3):
    upload_id = real_s3.create_multipart_upload(KEY, content_type="application/octet-stream")
    yield upload_id
    real_s3.abort_multipart_upload(KEY, upload_id)


def put(signed, body: bytes) -> requests.Response:
    return requests.put(signed.url, data=body, headers=signed.headers, timeout=30)


def test_a_batch_of_fast_signed_urls_is_accepted_part_by_part(real_s3, s3_upload):
    bodies = {number: os.urandom(SIZE) for number in range(1, 21)}
    parts = [
        PartToSign(number, size=SIZE, checksum=sha256_b64(body) if number % 2 else "")
        for number, body in bodies.items()
    ]
    signed = real_s3.presign_upload_parts(KEY, s3_upload, parts, expires_in=300)
    assert real_s3._part_signer(KEY, s3_upload) is not None, "the fast path was not taken"
    for url, body in zip(signed, bodies.values(), strict=True):
        response = put(url, body)
        assert response.status_code == 200, response.text
    stored = real_s3.list_parts(KEY, s3_upload)
    assert [(part.number, part.size) for part in stored] == [(n, SIZE) for n in bodies]
    assert [part.etag for part in stored] == [hashlib.md5(b).hexdigest() for b in bodies.values()]  # noqa: S324


@pytest.mark.parametrize(
    "length", [SIZE - 1, SIZE + 1, 0], ids=["one-byte-short", "one-byte-long", "empty"]
)
def test_a_fast_signed_url_refuses_a_body_of_another_length(real_s3, s3_upload, length):
    [signed] = real_s3.presign_upload_parts(
        KEY, s3_upload, [PartToSign(1, size=SIZE)], expires_in=300
    )
    response = put(signed, os.urandom(length))
    assert response.status_code in {400, 403}, (response.status_code, response.text)
    assert real_s3.list_parts(KEY, s3_upload) == []
    assert put(signed, os.urandom(SIZE)).status_code == 200  # the same URL, the right body


def test_a_fast_signed_url_refuses_a_body_with_another_checksum(real_s3, s3_upload):
    body = os.urandom(SIZE)
    [signed] = real_s3.presign_upload_parts(
        KEY, s3_upload, [PartToSign(1, size=SIZE, checksum=sha256_b64(body))], expires_in=300
    )
    response = put(signed, os.urandom(SIZE))
    assert response.status_code in {400, 403}, (response.status_code, response.text)
    assert real_s3.list_parts(KEY, s3_upload) == []
    assert put(signed, body).status_code == 200


def test_a_fast_signed_url_edited_to_name_another_part_is_refused(real_s3, s3_upload):
    [signed] = real_s3.presign_upload_parts(
        KEY, s3_upload, [PartToSign(1, size=SIZE)], expires_in=300
    )
    edited = signed.url.replace("partNumber=1&", "partNumber=2&")
    assert edited != signed.url
    response = requests.put(edited, data=os.urandom(SIZE), timeout=30)
    assert response.status_code == 403, response.text
    assert real_s3.list_parts(KEY, s3_upload) == []
