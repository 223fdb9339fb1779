"""A brief S3 failure during completion never leaves an upload stuck in `completing`.

A real Partwise server talks to SeaweedFS through a fault proxy (tests/faultproxy.py). The
review's scenario: the connection carrying CompleteMultipartUpload is reset, and the HEAD that
would settle the unknown outcome is answered 503. Before the fix the row stayed `completing`
and every complete, abort and sign answered 409 for 15 minutes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.django_server import DjangoServer
from tests.faultproxy import FaultProxy
from tests.s3server import client_of, seaweedfs  # noqa: F401  (fixtures)
from tests.support.presigned import put_signed

pytestmark = pytest.mark.timeout(180)

MiB = 1024 * 1024
S3_COMPLETE = r"[?&]uploadId="  # POST …?uploadId=: CompleteMultipartUpload (create is ?uploads)


@pytest.fixture(scope="module")
def s3_proxy(seaweedfs) -> Iterator[FaultProxy]:  # noqa: F811
    """Between Django and S3."""
    with FaultProxy(seaweedfs.endpoint) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def server(seaweedfs, s3_proxy, tmp_path_factory) -> Iterator[DjangoServer]:  # noqa: F811
    extra = {"AWS_S3_ENDPOINT_URL": s3_proxy.url, "AWS_S3_PUBLIC_ENDPOINT_URL": seaweedfs.endpoint}
    server = DjangoServer(tmp_path_factory.mktemp("django"), seaweedfs, extra_env=extra).start()
    yield server
    server.stop()


def uploaded_but_not_completed(server: DjangoServer, body: bytes) -> dict:
    """An upload whose one part is in S3 and reported: ready to complete."""
    upload = server.api("POST", "/api/uploads/", json={"filename": "a.bin", "size": len(body)})
    assert upload.status_code == 201, upload.text
    upload_id = upload.json()["id"]
    signed = server.api("POST", f"/api/uploads/{upload_id}/sign/", json={"parts": [{"number": 1}]})
    etag = put_signed(signed.json()["parts"][0], body)
    reported = server.api(
        "POST", f"/api/uploads/{upload_id}/parts/", json={"parts": [{"number": 1, "etag": etag}]}
    )
    assert reported.status_code == 200, reported.text
    return upload.json()


@pytest.mark.parametrize(
    "resets",
    [None, 1],
    ids=["s3-never-completed", "s3-completed-its-answer-lost"],
)
def test_a_reset_completion_whose_settling_head_fails_is_settled_by_the_retry(
    server, s3_proxy, resets
):
    body = os.urandom(MiB)
    upload = uploaded_but_not_completed(server, body)
    # Every CompleteMultipartUpload of the outage is reset before it reaches S3 (boto3's own
    # retries too), or only the first, so that boto3's retry completes it and is not heard.
    s3_proxy.add("reset", method="POST", path=S3_COMPLETE, times=resets, after_bytes=0)
    # Every HEAD of this outage (boto3 retries a 503 a few times) answers 503.
    s3_proxy.add("error", method="HEAD", status=503)

    failed = server.api("POST", f"/api/uploads/{upload['id']}/complete/")

    assert failed.status_code == 502, failed.text
    assert failed.json()["code"] == "storage_failed"
    # Not stuck: while S3 is still down a retry meets S3's error again, not a 409 "being
    # completed" for the next 15 minutes.
    again = server.api("POST", f"/api/uploads/{upload['id']}/complete/")
    assert again.status_code == 502, again.text
    s3_proxy.clear()  # S3 is healthy again

    # Any session that looks sees the truth: still to complete, or completed by S3 unheard
    # (the detail settles that from the object; it used to stay `completing`).
    detail = server.api("GET", f"/api/uploads/{upload['id']}/").json()
    assert detail["status"] == ("uploading" if resets is None else "completed"), detail
    done = server.api("POST", f"/api/uploads/{upload['id']}/complete/")

    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    assert done.json()["size"] == len(body)
    stored = client_of(server.s3).get_object(Bucket=server.bucket, Key=done.json()["key"])
    assert stored["Body"].read() == body
