"""Fast-signed part URLs are accepted by a real S3 (SeaweedFS), and still bind length and checksum.

tests/unit/test_presign.py proves the URLs are boto3's byte for byte; this proves the server
agrees: a whole batch signed at once is taken part by part, while a body of another length,
another checksum, or a URL edited to name another part is refused and leaves nothing in S3.
"""

import os

import pytest
import requests

from tests.support.checksums import etag_of, sha256_b64
from tests.support.presigned import put_to_url
from uploads.integrity import part_digest
from uploads.storage import PartToSign

# Once, in the SQLite pass: signing and SeaweedFS only, no database (tests/support/engines.py).
pytestmark = pytest.mark.engine_independent
KEY = "uploads/fast-presign/data.bin"
SIZE = 64 * 1024


@pytest.fixture
def s3_upload(real_s3):
    upload_id = real_s3.create_multipart_upload(KEY, content_type="application/octet-stream")
    yield upload_id
    real_s3.abort_multipart_upload(KEY, upload_id)


def test_a_batch_of_fast_signed_urls_is_accepted_part_by_part(real_s3, s3_upload, monkeypatch):
    bodies = {number: os.urandom(SIZE) for number in range(1, 21)}
    parts = [
        PartToSign(number, size=SIZE, checksum=sha256_b64(body) if number % 2 else "")
        for number, body in bodies.items()
    ]
    by_boto3: list[int] = []
    boto3_presign = real_s3.presign_client.generate_presigned_url

    def counting(*args, **kwargs):
        by_boto3.append(kwargs["Params"]["PartNumber"])
        return boto3_presign(*args, **kwargs)

    monkeypatch.setattr(real_s3.presign_client, "generate_presigned_url", counting)
    signed = real_s3.presign_upload_parts(KEY, s3_upload, parts, expires_in=300)
    assert by_boto3 == [1], "the fast path was not taken: boto3 signed every part"  # the template
    for url, body in zip(signed, bodies.values(), strict=True):
        response = put_to_url(url, body)
        assert response.status_code == 200, response.text
    stored = real_s3.list_parts(KEY, s3_upload)
    assert [(part.number, part.size) for part in stored] == [(n, SIZE) for n in bodies]
    assert [part.etag for part in stored] == [etag_of(b) for b in bodies.values()]


@pytest.mark.parametrize(
    "length", [SIZE - 1, SIZE + 1, 0], ids=["one-byte-short", "one-byte-long", "empty"]
)
def test_a_fast_signed_url_refuses_a_body_of_another_length(real_s3, s3_upload, length):
    [signed] = real_s3.presign_upload_parts(
        KEY, s3_upload, [PartToSign(1, size=SIZE)], expires_in=300
    )
    response = put_to_url(signed, os.urandom(length))
    assert response.status_code in {400, 403}, (response.status_code, response.text)
    assert real_s3.list_parts(KEY, s3_upload) == []
    assert put_to_url(signed, os.urandom(SIZE)).status_code == 200  # the same URL, the right body


def test_a_fast_signed_url_refuses_a_body_with_another_checksum(real_s3, s3_upload, digest):
    # The digest the store verifies (SHA-256 on SeaweedFS, Content-MD5 on Ceph RGW).
    body = os.urandom(SIZE)
    [signed] = real_s3.presign_upload_parts(
        KEY,
        s3_upload,
        [PartToSign(1, size=SIZE, checksum=part_digest(digest, body))],
        expires_in=300,
        checksum_algorithm=digest,
    )
    response = put_to_url(signed, os.urandom(SIZE))
    assert response.status_code in {400, 403}, (response.status_code, response.text)
    assert real_s3.list_parts(KEY, s3_upload) == []
    assert put_to_url(signed, body).status_code == 200


def test_a_fast_signed_url_edited_to_name_another_part_is_refused(real_s3, s3_upload):
    [signed] = real_s3.presign_upload_parts(
        KEY, s3_upload, [PartToSign(1, size=SIZE)], expires_in=300
    )
    edited = signed.url.replace("partNumber=1&", "partNumber=2&")
    assert edited != signed.url
    response = requests.put(edited, data=os.urandom(SIZE), timeout=30)
    assert response.status_code == 403, response.text
    assert real_s3.list_parts(KEY, s3_upload) == []
