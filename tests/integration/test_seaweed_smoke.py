import pytest
import requests

pytestmark = pytest.mark.integration
MiB = 1024 * 1024


def test_seaweedfs_refuses_a_part_body_of_the_wrong_length(real_s3):
    upload_id = real_s3.create_multipart_upload(
        "uploads/x", content_type="application/octet-stream"
    )
    signed = real_s3.presign_upload_part(
        "uploads/x", upload_id, 1, expires_in=60, content_length=5 * MiB
    )
    assert requests.put(signed.url, data=b"x" * (5 * MiB - 1), timeout=30).status_code == 403
    assert requests.put(signed.url, data=b"x" * (5 * MiB), timeout=30).status_code == 200
